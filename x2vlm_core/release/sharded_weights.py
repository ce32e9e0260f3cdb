"""Weights as one ``model.safetensors`` or, above a size limit, as shards with an index.

The sharded layout is the one Hugging Face tools read: ``model-00001-of-00003.safetensors``
and so on, plus ``model.safetensors.index.json`` holding
``{"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}``.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from x2vlm_core.errors import CheckpointError

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


def tensor_sizes(path: str | Path) -> dict[str, int]:
    """Each tensor's size in bytes, in file order, read from the safetensors header alone."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    header.pop("__metadata__", None)
    ordered = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
    return {name: info["data_offsets"][1] - info["data_offsets"][0] for name, info in ordered}


def write_weights(source: str | Path, out_dir: str | Path, max_shard_bytes: int) -> list[str]:
    """Copy a ``.safetensors`` file into ``out_dir`` whole, or as shards + index when it is larger
    than ``max_shard_bytes``; returns the names written. A tensor above the limit gets a shard of its own."""
    source, out_dir = Path(source), Path(out_dir)
    if max_shard_bytes <= 0:
        raise CheckpointError(f"the shard size limit must be positive, got {max_shard_bytes} bytes")
    if source.stat().st_size <= max_shard_bytes:
        shutil.copyfile(source, out_dir / WEIGHTS)
        return [WEIGHTS]
    groups: list[list[str]] = [[]]
    filled = 0
    sizes = tensor_sizes(source)
    for name, size in sizes.items():
        if groups[-1] and filled + size > max_shard_bytes:
            groups.append([])
            filled = 0
        groups[-1].append(name)
        filled += size
    names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    weight_map = {}
    with safe_open(str(source), framework="pt") as f:
        for shard, keys in zip(names, groups):
            save_file({k: f.get_tensor(k) for k in keys}, str(out_dir / shard), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(keys, shard))
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
    (out_dir / WEIGHTS_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True))
    return [*names, WEIGHTS_INDEX]


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; anything else under that name (a pickle, say) is a
    one-line CheckpointError rather than the library's traceback."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({str(exc).splitlines()[0][:160]}); "
            "use a model folder written by this project, or convert the weights"
        ) from None


def load_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a folder holding ``model.safetensors`` or shards + index."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return read_safetensors(folder / WEIGHTS)
    index_path = folder / WEIGHTS_INDEX
    if not index_path.is_file():
        raise CheckpointError(f"{folder} holds neither {WEIGHTS} nor {WEIGHTS_INDEX}; is it a model or release folder?")
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index_path} is not a safetensors index ({exc!r}); re-publish the release") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard or not (folder / shard).is_file():
            raise CheckpointError(f"{index_path} names shard {shard!r}, which is not a file in {folder}")
        tensors = read_safetensors(folder / shard)
        wrong = sorted(k for k in tensors if weight_map.get(k) != shard)
        if wrong:
            raise CheckpointError(f"{folder / shard} holds tensors its index puts elsewhere, e.g. {wrong[:3]}")
        state.update(tensors)
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise CheckpointError(f"{index_path} lists tensors no shard holds, e.g. {missing[:3]}")
    return state
