"""The official X²-VLM image-text json-lines (ImageTextJsonDataset): base64 ``binary`` and ``desc`` per line."""

from __future__ import annotations

import base64

from x2vlm_core.data.synthetic.datasets import PRETRAIN_IMAGE_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.formats.web_pairs import web_pairs
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_line


def write(world: World, count: int) -> SourceEntries:
    lines = [
        json_line({"binary": base64.b64encode(jpeg_bytes(scene)).decode("ascii"), "desc": caption})
        for scene, caption in web_pairs(world, count, "x2vlm-image-text")
    ]
    world.write_bytes("x2vlm/image_text/part-00000.jsonl", "".join(lines).encode("utf-8"))
    world.counts[PRETRAIN_IMAGE_TEXT]["train"] += count
    return [{"format": "x2vlm_image_text", "dataset": PRETRAIN_IMAGE_TEXT, "data": world.path("x2vlm/image_text")}]
