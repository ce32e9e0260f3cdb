"""Resumable DeepSpeed checkpoints that are never taken for complete when they are not.

A checkpoint is the folder ``CHECKPOINT_DIR/step<N>`` holding DeepSpeed's model and
optimizer shards, one ``rng-rank<R>.json`` per rank (python, numpy, torch and CUDA generator
states) and, written last by rank 0 once every rank has finished, ``complete.json`` (step,
world size, data position, and the sha256 of every other file in the folder). Only folders with
that marker are resumed from; DeepSpeed's own ``latest`` file is written after the marker for its
tools, but never trusted here, because DeepSpeed writes it before the other ranks are done.

The folder may be shared storage that others can write to: before loading, every file must be
one the marker lists, with its recorded sha256, and DeepSpeed reads it weights-only (safe_load).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from x2vlm_core import storage
from x2vlm_core.errors import CheckpointError, ConfigError
from x2vlm_core.train.distributed import barrier
from x2vlm_core.train.safe_load import weights_only_loads

log = logging.getLogger(__name__)

COMPLETE = "complete.json"
_TAG = re.compile(r"step(\d+)")


def tag_of(step: int) -> str:
    return f"step{step}"


def rng_state() -> dict[str, Any]:
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # the tuple form
    np_keys = np.asarray(np_keys)  # the stubs type the tuple's items loosely
    return {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        "cuda": [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available()
        else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))

    def tensor(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(tensor(state["torch"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensor(s) for s in state["cuda"]])


def complete_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, str, dict[str, Any]]]:
    """``(step, tag, marker)`` of every complete checkpoint, oldest first."""
    root = Path(ckpt_dir)
    found = []
    for folder in root.iterdir() if root.is_dir() else []:
        match = _TAG.fullmatch(folder.name)
        marker = folder / COMPLETE
        if match and marker.is_file():
            found.append((int(match[1]), folder.name, json.loads(marker.read_text())))
    return sorted(found)


def save_checkpoint(
    engine,
    ckpt_dir: str | Path,
    step: int,
    rank: int,
    world_size: int,
    marker: dict[str, Any],
    keep: int,
    write_extra: Callable[[str], None] | None = None,
    collect: Callable[[str], None] | None = None,
) -> str:
    """Save on every rank; returns the tag. ``marker`` (data position etc.) lands in complete.json.

    ``collect(tag)`` runs on every rank once every rank's files are written, to bring them all into
    rank 0's folder when nodes stage in folders of their own. ``write_extra(tag)`` then runs on
    rank 0 before the marker, so whatever it adds (the consolidated model folder) is complete when
    the checkpoint is.
    """
    if storage.is_gcs(ckpt_dir):
        raise ConfigError(
            f"checkpoint dir {ckpt_dir}: DeepSpeed writes to a filesystem; give a gs:// prefix "
            "as --checkpoint-root (with --run-id), or use a local path or a volume shared by all nodes"
        )
    ckpt_dir = Path(ckpt_dir)
    tag = tag_of(step)
    folder = ckpt_dir / tag
    if rank == 0 and (folder / COMPLETE).exists():
        (folder / COMPLETE).unlink()  # being rewritten: not complete until the new marker
    barrier(world_size)
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state={"step": step}, save_latest=False)
    storage.write_bytes(folder / f"rng-rank{rank}.json", json.dumps(rng_state()).encode())
    barrier(world_size)  # every rank's files are on disk before the marker
    if collect is not None:
        collect(tag)
    if rank == 0:
        if write_extra is not None:
            write_extra(tag)
        storage.write_bytes(
            folder / COMPLETE,
            json.dumps(
                {"step": step, "world_size": world_size, **marker, "files": file_hashes(folder)}, indent=2
            ).encode(),
        )
        storage.write_bytes(ckpt_dir / "latest", tag.encode())
        _prune(ckpt_dir, keep)
    barrier(world_size)
    return tag


def file_hashes(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` except the marker."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        hashes[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return hashes


def verify_files(folder: Path, marker: dict[str, Any]) -> None:
    """Refuse a checkpoint whose files differ from those its marker recorded (added, missing or changed).

    DeepSpeed finds some files by glob, so an extra file is as suspect as a changed one.
    """
    recorded = marker.get("files")
    if not isinstance(recorded, dict):
        raise CheckpointError(
            f"{folder}/{COMPLETE} records no file hashes (written by an older version, or "
            "tampered with); start a new run, or use --init with its model folder"
        )
    odd = [p for p in folder.rglob("*") if p.is_symlink() or not (p.is_file() or p.is_dir())]
    if odd:  # checked before hashing: a link or a FIFO could point anywhere or never end
        raise CheckpointError(f"{odd[0]} is a link or special file; checkpoint folders hold plain files only")
    found = file_hashes(folder)
    changed = sorted(set(found) ^ set(recorded)) or sorted(k for k in found if found[k] != recorded[k])
    if changed:
        raise CheckpointError(
            f"{folder}: {changed[0]} is not the file this checkpoint saved "
            f"({len(changed)} file(s) added, missing or changed since); restore the folder or "
            "delete it to resume from the one before"
        )


def _prune(ckpt_dir: Path, keep: int) -> None:
    """Drop complete checkpoints beyond the newest ``keep`` and folders of saves that never completed."""
    complete = complete_checkpoints(ckpt_dir)
    doomed = [tag for _, tag, _ in complete[:-keep]] if keep > 0 else []
    done = {tag for _, tag, _ in complete}
    doomed += [f.name for f in ckpt_dir.iterdir() if _TAG.fullmatch(f.name) and f.name not in done]
    for tag in doomed:
        shutil.rmtree(ckpt_dir / tag, ignore_errors=True)
        log.info("removed checkpoint %s", ckpt_dir / tag)


def load_latest(
    engine, ckpt_dir: str | Path, rank: int, world_size: int, expected: dict[str, Any]
) -> dict[str, Any] | None:
    """Load the newest complete checkpoint into ``engine`` and this rank's RNGs; returns its marker.

    ``expected`` holds what must match for the data position to mean the same thing
    (batch sizes, streams); a mismatch is refused rather than silently resumed wrong.
    """
    found = complete_checkpoints(ckpt_dir)
    if not found:
        return None
    step, tag, marker = found[-1]
    if marker["world_size"] != world_size:
        raise ConfigError(
            f"{Path(ckpt_dir) / tag} was written by {marker['world_size']} ranks, this run has "
            f"{world_size}; resume with {marker['world_size']} ranks, or start a new run with "
            f"--init {Path(ckpt_dir) / tag / 'model'} and another --checkpoint-dir"
        )
    changed = {k: (marker.get(k), v) for k, v in expected.items() if marker.get(k) != v}
    if changed:
        detail = ", ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in sorted(changed.items()))
        raise ConfigError(
            f"{Path(ckpt_dir) / tag} was written with other settings ({detail}); resume with the "
            "same settings, or use another --checkpoint-dir"
        )
    verify_files(Path(ckpt_dir) / tag, marker)
    with weights_only_loads(Path(ckpt_dir) / tag):
        load_path, _ = engine.load_checkpoint(str(ckpt_dir), tag=tag)
    if load_path is None:
        raise CheckpointError(
            f"DeepSpeed could not load {Path(ckpt_dir) / tag}; delete that folder to resume from the one before"
        )
    rng_file = Path(ckpt_dir) / tag / f"rng-rank{rank}.json"
    set_rng_state(json.loads(rng_file.read_text()))
    log.info("resumed from %s (step %d)", Path(ckpt_dir) / tag, step)
    return marker


def consolidated_model(engine, model: nn.Module, ckpt_dir: str | Path, tag: str) -> nn.Module:
    """The full fp32 model of a saved checkpoint (call on one rank, after the save).

    ZeRO-1/2 in fp32 keeps full fp32 parameters in the module itself; bf16 and ZeRO-3 keep
    them sharded in the optimizer, so they are rebuilt from the checkpoint's shards.
    """
    if engine.zero_optimization_stage() < 3 and not engine.bfloat16_enabled():
        return model
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with weights_only_loads(Path(ckpt_dir) / tag):
        state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir), tag=tag)
    clone = type(model)(model.config)
    missing, unexpected = clone.load_state_dict(state, strict=False)
    aliases = {n for n, _ in clone.named_parameters(remove_duplicate=False)} - {n for n, _ in clone.named_parameters()}
    missing = [k for k in missing if k not in aliases]
    if missing or unexpected:
        raise CheckpointError(
            f"{Path(ckpt_dir) / tag}: consolidated weights do not fit the model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return clone
