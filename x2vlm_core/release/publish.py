"""Publishing a model as an immutable, versioned release in a local folder or under gs://.

``<destination>/<model_name>/<version>/`` holds the weights (sharded above a size limit), the
config, the tokenizer, metrics, lineage, a model card, and ``manifest.json`` (every file with
size and sha256). The manifest is written last and marks the release complete; ``LATEST``
moves only after it exists.

Locally the release is assembled in a hidden staging folder and renamed into place. On GCS
every object is created with ``if_generation_match=0``, so nothing that exists is replaced,
and checked against the local checksums; when a publish fails, the objects it created are
deleted again, and if the process dies instead, the version has no manifest and readers
refuse it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from x2vlm_core import __version__, storage
from x2vlm_core.errors import ReleaseError, StorageError
from x2vlm_core.families import family_of
from x2vlm_core.release.fetch import LATEST, MANIFEST, NAME, read_manifest, sha256_file, verify_release  # noqa: F401  (verify_release: re-exported)
from x2vlm_core.release.lineage import code_version
from x2vlm_core.release.model_folder import CONFIG, TOKENIZER, WEIGHTS, read_model_config
from x2vlm_core.release.sharded_weights import write_weights

log = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_BYTES = 2 * 1024**3
TRAINING_SUMMARY = "training.json"
LATEST_ATTEMPTS = 5  # conditional rewrites of LATEST before giving up on a busy pointer


def _model_card(
    name: str,
    version: str,
    config: Any,
    metrics: dict[str, dict[str, Any]],
    lineage: dict[str, Any],
    training: dict[str, Any],
) -> str:
    family = family_of(config)
    lines = [
        f"# {name} {version}",
        "",
        "## What it is",
        "",
        f"{family.describe(config)} It reads {config.image_res}px images and {family.languages} text, "
        "embeds both into one space (retrieval), "
        "scores image-text matches, and, with a box head, locates the region a phrase describes (grounding). "
        "Weights are safetensors; `config.yaml` rebuilds the model (`x2vlm fetch-release` downloads, verifies and "
        "loads it).",
        "",
        "## Data it saw",
        "",
    ]
    data = lineage.get("training_data")
    if isinstance(data, dict) and data.get("splits"):
        lines += [
            f"Prepared data `{data.get('uri')}` (index sha256 `{data.get('index_sha256')}`): pre-training "
            "reads the `pretrain_*` datasets, fine-tuning and evaluation the task datasets.",
            "",
            "| dataset/split | samples | shards |",
            "| --- | --- | --- |",
        ]
        lines.extend(
            f"| {name} | {entry.get('samples')} | {entry.get('shards')} |"
            for name, entry in sorted(data["splits"].items())
        )
    else:
        lines.append("The training data was not recorded for this release (it was published without its shards).")
    if training:
        cfg = training.get("train_config", {})
        lines += [
            "",
            f"Training: {training.get('steps')} steps, batch size {cfg.get('batch_size')}, "
            f"{training.get('world_size')} process(es), final loss {training.get('final', {}).get('loss')}.",
        ]
    lines += ["", "## Metrics", ""]
    if not metrics:
        lines += ["No task was evaluated.", ""]
    for task, values in sorted(metrics.items()):
        lines += [f"### {task}", "", "| metric | value |", "| --- | --- |"]
        lines.extend(
            f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(values.items())
        )
        lines.append("")
    lines += [
        "## Intended use",
        "",
        "Research and product prototypes of image-text retrieval, image-text matching and phrase grounding, after "
        "fine-tuning on the target task; a starting point for further fine-tuning.",
        "",
        "## Limits",
        "",
        "- Metrics hold only for the evaluation data named above; check on your own data before relying on it.",
        f"- {family.languages.capitalize()} text only, at most {config.max_tokens} tokens a text; images are "
        f"resized to {config.image_res}px.",
        "- Web image-text data carries social biases and errors, and the model learns them; it is not meant for "
        "decisions about people.",
        "- A model trained on the synthetic shapes dataset only exercises the platform; it knows nothing of real images.",
        "",
        f"Code: x2vlm_core {__version__}, commit `{lineage.get('code', {}).get('commit', 'unknown')}`. "
        "Lineage (pipeline run, inputs and their hashes) is in `lineage.json`; every file's sha256 in `manifest.json`.",
        "",
    ]
    return "\n".join(lines)


def _assemble(
    model_dir: Path,
    staging: Path,
    model_name: str,
    version: str,
    metrics: dict[str, dict[str, Any]],
    lineage: dict[str, Any],
    max_shard_bytes: int,
) -> dict[str, Any]:
    """Write every release file but the manifest into ``staging``; returns the manifest."""
    config = read_model_config(model_dir)
    training_path = model_dir / TRAINING_SUMMARY
    training = json.loads(training_path.read_text()) if training_path.is_file() else {}
    weights = write_weights(model_dir / WEIGHTS, staging, max_shard_bytes)
    # Everything else of the model folder travels as it is: config, tokenizer, task heads, training summary.
    for path in sorted(model_dir.rglob("*")):
        if path.is_symlink():  # would publish whatever it points at
            raise ReleaseError(f"{path} is a symlink; a model folder to publish holds plain files only")
        if path.is_file() and path.name != WEIGHTS and not path.name.startswith("."):
            target = staging / path.relative_to(model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    # A WordPiece vocabulary (X²-VLM, VLMo) or CCLM's sentencepiece / tokenizer.json.
    tokenizer_files = [f"{TOKENIZER}/{name}" for name in ("vocab.txt", "sentencepiece.bpe.model", "tokenizer.json")]
    if not (staging / CONFIG).is_file() or not any((staging / name).is_file() for name in tokenizer_files):
        raise ReleaseError(
            f"{model_dir} lacks {CONFIG} or a tokenizer ({' / '.join(tokenizer_files)}); "
            "pass a model folder written by pretrain or finetune"
        )
    lineage = {
        **lineage,
        "model_files": {p.name: sha256_file(p) for p in sorted(model_dir.iterdir()) if p.is_file()},
        "code": {"x2vlm_core": __version__, "commit": code_version()},
    }
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (staging / "lineage.json").write_text(json.dumps(lineage, indent=2, sort_keys=True))
    (staging / "MODEL_CARD.md").write_text(_model_card(model_name, version, config, metrics, lineage, training))
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    return {
        "model_name": model_name,
        "version": version,
        "created": _now(),  # microseconds: LATEST moves only to a later one
        "weights": weights[-1],  # model.safetensors, or the shards' index
        "files": [
            {"path": p.relative_to(staging).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in files
        ],
    }


def publish_release(
    model_dir: str | Path,
    destination: str,
    model_name: str,
    metrics: dict[str, dict[str, Any]] | None = None,
    lineage: dict[str, Any] | None = None,
    version: str | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> str:
    """Write a release and return its location (folder or gs:// URI). An existing version is never overwritten."""
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS).is_file():
        raise ReleaseError(f"{model_dir} is not a model folder ({WEIGHTS} missing); pass a pretrain/finetune output")
    version = version or time.strftime("v%Y%m%d-%H%M%S", time.gmtime())
    for what, value in (("model name", model_name), ("version", version)):
        if not NAME.fullmatch(value) or value == LATEST:
            raise ReleaseError(f"{what} {value!r} must be one path segment of letters, digits, '.', '_' or '-'")
    base = storage.join(destination, model_name)
    release = storage.join(base, version)
    if storage.list_uris(release) or (not storage.is_gcs(release) and Path(release).exists()):
        raise ReleaseError(f"release {release} already exists; releases are immutable, choose another --version")
    metrics, lineage = metrics or {}, lineage or {}
    if storage.is_gcs(destination):
        with tempfile.TemporaryDirectory(prefix="x2vlm-release-") as staging:
            manifest = _assemble(model_dir, Path(staging), model_name, version, metrics, lineage, max_shard_bytes)
            _upload(Path(staging), release, manifest)
    else:
        _write_local(model_dir, Path(base), version, metrics, lineage, max_shard_bytes, model_name)
    # Only now is the version complete, so only now may the pointer name it.
    try:
        _move_latest(base, version)
    except StorageError as exc:
        raise ReleaseError(
            f"{release} is published and complete, but {base}/{LATEST} could not be moved to it "
            f"({exc}); write {version!r} into it by hand"
        ) from None
    log.info("published %s", release)
    return release


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _created(release: str) -> datetime | None:
    """When a complete release's manifest says it was created; None if that cannot be read."""
    try:
        return datetime.fromisoformat(str(read_manifest(release).get("created")))
    except (ReleaseError, StorageError, ValueError):
        return None


def _move_latest(base: str, version: str) -> None:
    """Point ``LATEST`` at ``version`` unless it names a release created later (a slower publish
    that finishes last must not move it back). On GCS the pointer is replaced only at the
    generation read, and re-read when another publish got there first."""
    pointer, ours = storage.join(base, LATEST), _created(storage.join(base, version))
    for _ in range(LATEST_ATTEMPTS):
        current, generation = storage.read_with_generation(pointer)
        named = current.decode(errors="replace").removesuffix("\n") if current is not None else None
        if named and named != version and NAME.fullmatch(named):
            theirs = _created(storage.join(base, named))
            if theirs is not None and (ours is None or theirs >= ours):
                log.warning("%s stays at %s, created %s, not before %s", pointer, named, theirs, version)
                return
        try:
            storage.write_bytes(pointer, (version + "\n").encode(), if_generation_match=generation)
            return
        except storage.ChangedMeanwhile:
            continue
    raise StorageError(f"{pointer} kept changing while {LATEST_ATTEMPTS} publishes raced to move it")


def _write_local(
    model_dir: Path,
    base: Path,
    version: str,
    metrics: dict[str, dict[str, Any]],
    lineage: dict[str, Any],
    max_shard_bytes: int,
    model_name: str,
) -> None:
    staging = base / f".{version}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _assemble(model_dir, staging, model_name, version, metrics, lineage, max_shard_bytes)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))  # last: marks the release complete
        try:
            os.rename(staging, base / version)
        except OSError:
            raise ReleaseError(
                f"release {base / version} appeared while publishing; releases are immutable, choose another --version"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _upload(staging: Path, release: str, manifest: dict[str, Any]) -> None:
    """Create every object, the manifest last; on any failure delete what this call created."""
    created: list[tuple[str, int]] = []
    try:
        for entry in manifest["files"]:
            uri = storage.join(release, entry["path"])
            generation = storage.upload_file(staging / entry["path"], uri, if_generation_match=0)
            if generation is not None:
                created.append((uri, generation))
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        storage.upload_file(staging / MANIFEST, storage.join(release, MANIFEST), if_generation_match=0)
    except BaseException as exc:
        left = _delete_created(created)
        if not isinstance(exc, StorageError):
            raise
        cleanup = (
            (
                f"{len(left)} uploaded object(s) could not be removed, e.g. {left[0]}; delete {release}/ before "
                "publishing this version again"
            )
            if left
            else "the objects it had uploaded were removed"
        )
        raise ReleaseError(
            f"publishing {release} failed and it has no {MANIFEST}, so no reader will use it ({exc}); {cleanup}"
        ) from None


def _delete_created(created: list[tuple[str, int]]) -> list[str]:
    """Delete exactly the object versions this publish created; returns the ones that could not be."""
    for i, (uri, generation) in enumerate(created):
        try:
            storage.delete(uri, if_generation_match=generation)
        except StorageError as exc:
            log.warning("could not remove %s after a failed publish: %s", uri, exc)
            return [u for u, _ in created[i:]]  # the storage is unreachable: do not wait on each object
    return []
