"""COCO 2014: the images (train2014/, val2014/) and the caption annotations (annotations/captions_*.json).

The COCO images are the ones Karpathy, VQA v2, RefCOCO+, the multilingual captions and the IGLUE
sets describe, as in the real datasets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from x2vlm_core.data.synthetic.captions import captions
from x2vlm_core.data.synthetic.datasets import PRETRAIN_IMAGE_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.scenes import Scene
from x2vlm_core.data.synthetic.world import SourceEntries, World

SPLIT_FOLDERS = (("train2014", "train"), ("val2014", "val"))


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    folder: str  # train2014 | val2014
    file_name: str
    karpathy_split: str
    scene: Scene
    captions: tuple[str, ...]  # 5; COCO keeps the first 2


def _karpathy_split(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.65:
        return "train"
    if draw < 0.70:
        return "restval"
    return "val" if draw < 0.85 else "test"


def write_images(world: World, num_images: int) -> list[CocoImage]:
    """Draw and write the COCO images, each with its Karpathy split and five captions."""
    rng = world.rng("coco")
    images = []
    for index in range(num_images):
        image_id = index + 1
        split = _karpathy_split(rng)
        # Like the real Karpathy split: train comes from train2014, the rest from val2014.
        folder = "train2014" if split == "train" else "val2014"
        scene = world.sampler.sample(world.size, world.size)
        file_name = f"COCO_{folder}_{image_id:012d}.jpg"
        world.write_bytes(f"coco/{folder}/{file_name}", jpeg_bytes(scene))
        images.append(CocoImage(image_id, folder, file_name, split, scene, tuple(captions(scene, rng, 5))))
    for folder, _ in SPLIT_FOLDERS:  # both exist even when one holds no image
        (world.root / "coco" / folder).mkdir(parents=True, exist_ok=True)
    return images


def write(world: World, images: list[CocoImage]) -> SourceEntries:
    """captions_{train,val}2014.json, two captions per image."""
    sources = []
    annotation_id = 0
    for folder, split in SPLIT_FOLDERS:
        chosen = [image for image in images if image.folder == folder]
        annotations = []
        for image in chosen:
            for caption in image.captions[:2]:
                annotation_id += 1
                annotations.append({"id": annotation_id, "image_id": image.image_id, "caption": caption})
        relative = f"coco/annotations/captions_{folder}.json"
        world.write_json(
            relative,
            {
                "info": {"description": "x2vlm synthetic shapes world", "version": "1.0", "year": 2014},
                "licenses": [],
                "images": [
                    {"id": i.image_id, "file_name": i.file_name, "width": world.size, "height": world.size}
                    for i in chosen
                ],
                "annotations": annotations,
            },
        )
        world.counts[PRETRAIN_IMAGE_TEXT][split] += len(chosen)
        sources.append(
            {
                "format": "coco_captions",
                "dataset": PRETRAIN_IMAGE_TEXT,
                "split": split,
                "annotations": world.path(relative),
                "images": world.path(f"coco/{folder}"),
            }
        )
    return sources
