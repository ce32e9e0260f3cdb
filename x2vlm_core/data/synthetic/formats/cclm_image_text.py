"""CCLM's multilingual image-text json-lines over the COCO images: base64 ``binary`` + ``caption``
[{language: text}], each COCO caption with its shapes-speak translation.

One layout, two sources: the train images' file (``pretrain_multilingual``) is read as X²-VLM
json-lines (``caption_key: caption``); the val images' one, held-out images for multilingual
retrieval (``multilingual_retrieval``, split test), with the cclm_image_text format.
"""

from __future__ import annotations

import base64

from x2vlm_core.data.synthetic.datasets import MULTILINGUAL_RETRIEVAL, PRETRAIN_MULTILINGUAL
from x2vlm_core.data.synthetic.formats.coco_captions import CocoImage
from x2vlm_core.data.synthetic.shapes_speak import SYNTHETIC_LANGUAGE, translate
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_line

PRETRAIN_DATA = "x2vlm/multilingual"
RETRIEVAL_DATA = "x2vlm/multilingual_val"


def _write_part(world: World, images: list[CocoImage], folder: str) -> int:
    """``folder``/part-00000.jsonl, one line per image; the number of lines."""
    lines = []
    for image in images:
        jpeg = (world.root / "coco" / image.folder / image.file_name).read_bytes()
        captions = [{"en": caption, SYNTHETIC_LANGUAGE: translate(caption)} for caption in image.captions[:2]]
        lines.append(
            json_line(
                {"binary": base64.b64encode(jpeg).decode("ascii"), "caption": captions, "image_id": image.image_id}
            )
        )
    world.write_bytes(f"{folder}/part-00000.jsonl", "".join(lines).encode("utf-8"))
    return len(lines)


def write(world: World, coco_images: list[CocoImage]) -> SourceEntries:
    train = [image for image in coco_images if image.folder == "train2014"]
    held_out = [image for image in coco_images if image.folder == "val2014"]
    world.counts[PRETRAIN_MULTILINGUAL]["train"] += _write_part(world, train, PRETRAIN_DATA)
    world.counts[MULTILINGUAL_RETRIEVAL]["test"] += _write_part(world, held_out, RETRIEVAL_DATA)
    return [
        {
            "format": "x2vlm_image_text",
            "dataset": PRETRAIN_MULTILINGUAL,
            "data": world.path(PRETRAIN_DATA),
            "caption_key": "caption",
        },
        {
            "format": "cclm_image_text",
            "dataset": MULTILINGUAL_RETRIEVAL,
            "split": "test",
            "data": world.path(RETRIEVAL_DATA),
        },
    ]
