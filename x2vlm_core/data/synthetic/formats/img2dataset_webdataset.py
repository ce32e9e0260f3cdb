"""img2dataset output_format=webdataset (as Conceptual Captions downloads come): cc3m/webdataset/NNNNN.tar
of key.jpg/.txt/.json."""

from __future__ import annotations

import io
import tarfile

from x2vlm_core.data.synthetic.datasets import PRETRAIN_IMAGE_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.formats.img2dataset_meta import img2dataset_meta
from x2vlm_core.data.synthetic.formats.web_pairs import web_pairs
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_bytes


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A tar with fixed header fields, so the same members give the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "x2vlm", "x2vlm"
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write(world: World, count: int) -> SourceEntries:
    """Two shards (one when there is a single sample)."""
    per_shard = max(1, (count + 1) // 2)
    pairs = web_pairs(world, count, "img2dataset-webdataset")
    for shard in range(0, count, per_shard):
        members = []
        for offset, (scene, caption) in enumerate(pairs[shard : shard + per_shard]):
            key = f"{shard // per_shard:05d}{offset:04d}"
            meta = img2dataset_meta(key, caption, world.size)
            members += [
                (f"{key}.jpg", jpeg_bytes(scene)),
                (f"{key}.txt", caption.encode("utf-8")),
                (f"{key}.json", json_bytes(meta)),
            ]
        world.write_bytes(f"cc3m/webdataset/{shard // per_shard:05d}.tar", _tar_bytes(members))
    world.counts[PRETRAIN_IMAGE_TEXT]["train"] += count
    return [
        {"format": "img2dataset_webdataset", "dataset": PRETRAIN_IMAGE_TEXT, "shards": world.path("cc3m/webdataset")}
    ]
