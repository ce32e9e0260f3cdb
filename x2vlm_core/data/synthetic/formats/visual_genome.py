"""Visual Genome: the images (VG_100K/), image_data.json, and the region descriptions (region_descriptions.json).

The objects (visual_genome_objects) describe the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

from x2vlm_core.data.synthetic.datasets import PRETRAIN_REGION_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.scenes import Scene
from x2vlm_core.data.synthetic.world import SourceEntries, World

IMAGE_DATA = "vg/image_data.json"
IMAGES = "vg"  # image_data.json's urls name the folder below it (VG_100K/)


@dataclass(frozen=True)
class VisualGenomeImage:
    image_id: int
    scene: Scene


def write_images(world: World, num_images: int) -> list[VisualGenomeImage]:
    """Draw and write the images and image_data.json."""
    # Wider than tall, like most photos, so resizing and box scaling see a real aspect ratio.
    width, height = world.size * 3 // 2, world.size
    images, image_data = [], []
    for index in range(num_images):
        image_id = index + 1
        scene = world.sampler.sample(width, height)
        world.write_bytes(f"vg/VG_100K/{image_id}.jpg", jpeg_bytes(scene))
        image_data.append(
            {
                "image_id": image_id,
                "width": width,
                "height": height,
                "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{image_id}.jpg",
                "coco_id": None,
                "flickr_id": None,
            }
        )
        images.append(VisualGenomeImage(image_id, scene))
    world.write_json(IMAGE_DATA, image_data)
    return images


def write(world: World, images: list[VisualGenomeImage]) -> SourceEntries:
    """region_descriptions.json: one region per shape, its phrase naming the shape and where it is."""
    regions = []
    region_id = 0
    for image in images:
        image_regions = []
        for shape in image.scene.shapes:
            x, y, w, h = shape.box
            region_id += 1
            image_regions.append(
                {
                    "region_id": region_id,
                    "image_id": image.image_id,
                    "phrase": f"{shape.name} {image.scene.position_of(shape)}",
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                }
            )
        regions.append({"id": image.image_id, "regions": image_regions})
    world.write_json("vg/region_descriptions.json", regions)
    world.counts[PRETRAIN_REGION_TEXT]["train"] += len(images)
    return [
        {
            "format": "visual_genome",
            "dataset": PRETRAIN_REGION_TEXT,
            "split": "train",
            "regions": world.path("vg/region_descriptions.json"),
            "image_data": world.path(IMAGE_DATA),
            "images": world.path(IMAGES),
        }
    ]
