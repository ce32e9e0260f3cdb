"""Visual Genome objects (vg/objects.json) over the Visual Genome images: one object per shape."""

from __future__ import annotations

from x2vlm_core.data.synthetic.datasets import PRETRAIN_REGION_TEXT
from x2vlm_core.data.synthetic.formats.visual_genome import IMAGE_DATA, IMAGES, VisualGenomeImage
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, images: list[VisualGenomeImage]) -> SourceEntries:
    objects = []
    object_id = 0
    for image in images:
        image_objects = []
        for shape in image.scene.shapes:
            x, y, w, h = shape.box
            object_id += 1
            image_objects.append(
                # The colour as an attribute (VG's attributes.json layout): "red square" names one object of
                # the scene, where "square" alone may name two and give the box losses no single answer.
                {
                    "object_id": object_id,
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                    "names": [shape.kind],
                    "synsets": [f"{shape.kind}.n.01"],
                    "attributes": [shape.colour],
                }
            )
        objects.append({"image_id": image.image_id, "objects": image_objects})
    world.write_json("vg/objects.json", objects)
    world.counts[PRETRAIN_REGION_TEXT]["train"] += len(images)
    return [
        {
            "format": "visual_genome_objects",
            "dataset": PRETRAIN_REGION_TEXT,
            "split": "train",
            "objects": world.path("vg/objects.json"),
            "image_data": world.path(IMAGE_DATA),
            "images": world.path(IMAGES),
        }
    ]
