"""The official X²-VLM region-text json-lines (RegionTextJsonDataset): base64 ``binary``, ``caption`` and
``elems`` (``bb`` [x, y, w, h], ``caption``, ``attributes``) per line."""

from __future__ import annotations

import base64

from x2vlm_core.data.synthetic.captions import captions
from x2vlm_core.data.synthetic.datasets import PRETRAIN_REGION_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_line


def write(world: World, count: int) -> SourceEntries:
    rng = world.rng("x2vlm-region-text")
    lines = []
    for _ in range(count):
        scene = world.sampler.sample(world.size, world.size)
        elems = [
            {"bb": list(shape.box), "caption": f"{shape.name} {scene.position_of(shape)}", "attributes": shape.colour}
            for shape in scene.shapes
        ]
        caption = captions(scene, rng, 1)[0]
        lines.append(
            json_line(
                {"binary": base64.b64encode(jpeg_bytes(scene)).decode("ascii"), "caption": caption, "elems": elems}
            )
        )
    world.write_bytes("x2vlm/region_text/part-00000.jsonl", "".join(lines).encode("utf-8"))
    world.counts[PRETRAIN_REGION_TEXT]["train"] += count
    return [{"format": "x2vlm_region_text", "dataset": PRETRAIN_REGION_TEXT, "data": world.path("x2vlm/region_text")}]
