"""A WikiMatrix-style TSV (``score<TAB>English<TAB>shapes-speak``): each distinct COCO caption and its translation."""

from __future__ import annotations

from x2vlm_core.data.synthetic.datasets import PRETRAIN_PARALLEL_TEXT
from x2vlm_core.data.synthetic.formats.coco_captions import CocoImage
from x2vlm_core.data.synthetic.shapes_speak import translate
from x2vlm_core.data.synthetic.world import SourceEntries, World

PARALLEL_FILE = "parallel/WikiMatrix.en-xx.tsv"  # WikiMatrix names its language pair in the file name


def write(world: World, coco_images: list[CocoImage]) -> SourceEntries:
    rng = world.rng("parallel")
    captions = sorted({caption for image in coco_images for caption in image.captions})
    lines = [f"{rng.uniform(1.04, 1.3):.4f}\t{caption}\t{translate(caption)}\n" for caption in captions]
    world.write_bytes(PARALLEL_FILE, "".join(lines).encode("utf-8"))
    world.counts[PRETRAIN_PARALLEL_TEXT]["train"] += len(lines)
    return [{"format": "parallel_tsv", "dataset": PRETRAIN_PARALLEL_TEXT, "data": world.path(PARALLEL_FILE)}]
