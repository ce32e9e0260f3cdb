"""Conceptual Captions' caption<TAB>image layout (cc3m/tsv/Train_GCC-training.tsv), with the images already local."""

from __future__ import annotations

from x2vlm_core.data.synthetic.datasets import PRETRAIN_IMAGE_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.formats.web_pairs import web_pairs
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, count: int) -> SourceEntries:
    lines = []
    for index, (scene, caption) in enumerate(web_pairs(world, count, "caption-tsv")):
        name = f"{index:08d}.jpg"
        world.write_bytes(f"cc3m/tsv/images/{name}", jpeg_bytes(scene))
        lines.append(f"{caption}\t{name}\n")
    world.write_bytes("cc3m/tsv/Train_GCC-training.tsv", "".join(lines).encode("utf-8"))
    world.counts[PRETRAIN_IMAGE_TEXT]["train"] += count
    return [
        {
            "format": "caption_tsv",
            "dataset": PRETRAIN_IMAGE_TEXT,
            "annotations": world.path("cc3m/tsv/Train_GCC-training.tsv"),
            "images": world.path("cc3m/tsv/images"),
        }
    ]
