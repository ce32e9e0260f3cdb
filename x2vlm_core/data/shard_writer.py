"""Writing webdataset shards: ``{dataset}/{split}-{00000}.tar``, atomically and byte-for-byte reproducibly.

A sample is ``{"key": str, "meta": dict, "images": [jpeg bytes, ...]}`` and becomes the tar members
``<key>.json`` plus ``<key>.jpg`` (one image) or ``<key>.img0.jpg``, ``<key>.img1.jpg``, ... (image
pairs, and the frames of a video: a meta with ``num_frames`` always gets numbered members).
The target may be a local path or a ``gs://`` URI (see ``x2vlm_core.data.shards`` for the schema).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import webdataset

from x2vlm_core import storage
from x2vlm_core.data.images import scale_box
from x2vlm_core.errors import DataError

# Fixed tar header fields: the same samples must give the same bytes on any machine, any day.
TAR_MTIME = 0
TAR_OWNER = "x2vlm"
TAR_MODE = 0o444
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")


def shard_relpath(dataset: str, split: str, index: int) -> str:
    return f"{dataset}/{split}-{index:05d}.tar"


def image_member_names(count: int, numbered: bool = False) -> list[str]:
    return ["jpg"] if count == 1 and not numbered else [f"img{i}.jpg" for i in range(count)]


def shard_meta(record: dict[str, Any], sizes: list[tuple[int, int]], scale: float) -> dict[str, Any]:
    """The ``<key>.json`` of a record whose images were resized by ``scale`` to ``sizes``.

    The record loses ``image_paths`` (shards are self-contained) and gains ``width``/``height``
    (one image) or ``image_sizes`` (pairs, video frames); boxes are rescaled to the stored pixels.
    """
    meta = {name: value for name, value in record.items() if name != "image_paths"}
    if len(sizes) == 1 and "num_frames" not in record:
        meta["width"], meta["height"] = sizes[0]
    else:
        meta["image_sizes"] = [list(size) for size in sizes]
    if "bbox" in meta:
        meta["bbox"] = scale_box(meta["bbox"], scale)
    if "regions" in meta:
        meta["regions"] = [{**region, "bbox": scale_box(region["bbox"], scale)} for region in meta["regions"]]
    if "proposals" in meta:
        meta["proposals"] = [scale_box(box, scale) for box in meta["proposals"]]
    return meta


def write_shard(target: str | Path, samples: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Write ``samples`` (in the given order) to the tar ``target``; return ``{path, count, bytes, sha256}``.

    A local tar is written next to its target and renamed into place; a ``gs://`` one is built in a
    temporary file and uploaded in one request. Either way readers never see half a shard.
    """
    if storage.is_gcs(target):
        with tempfile.TemporaryDirectory(prefix="x2vlm-shard-") as folder:
            written = _write_local(Path(folder) / str(target).rsplit("/", 1)[-1], samples)
            storage.upload_file(written["path"], str(target))
        return {**written, "path": str(target)}
    return _write_local(Path(target), samples)


def _write_local(path: Path, samples: Iterable[dict[str, Any]]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    count = 0
    seen: set[str] = set()
    try:
        with open(temporary, "wb") as handle:
            with webdataset.TarWriter(
                handle, encoder=False, mtime=TAR_MTIME, user=TAR_OWNER, group=TAR_OWNER, mode=TAR_MODE
            ) as writer:
                for sample in samples:
                    writer.write(_tar_members(sample, seen, path))
                    count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    digest, size = _sha256_and_size(path)
    return {"path": str(path), "count": count, "bytes": size, "sha256": digest}


def _tar_members(sample: dict[str, Any], seen: set[str], path: Path) -> dict[str, Any]:
    key = sample["key"]
    if not isinstance(key, str) or not _KEY_CHARS.fullmatch(key):
        raise DataError(
            f"{path}: sample key {key!r} may only hold letters, digits, '_' and '-' (a dot splits the sample)"
        )
    if key in seen:
        raise DataError(f"{path}: two samples share the key {key!r}; give each source's records distinct ids")
    seen.add(key)
    members: dict[str, Any] = {
        "__key__": key,
        "json": json.dumps(sample["meta"], sort_keys=True, ensure_ascii=False).encode("utf-8"),
    }
    for name, data in zip(
        image_member_names(len(sample["images"]), numbered="num_frames" in sample["meta"]), sample["images"]
    ):
        members[name] = bytes(data)
    return members


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable, not just the file contents.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256_and_size(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
