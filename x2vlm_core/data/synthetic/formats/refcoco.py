"""RefCOCO+ over the COCO train images: refs(unc).p (a protocol-2 pickle), instances.json (one ref per
shape) and dets.json, the detection proposals weakly supervised grounding chooses among."""

from __future__ import annotations

import io
import pickle
import random

from x2vlm_core.data.synthetic.captions import tokens
from x2vlm_core.data.synthetic.datasets import GROUNDING
from x2vlm_core.data.synthetic.formats.coco_captions import CocoImage
from x2vlm_core.data.synthetic.scenes import CATEGORY_IDS, SHAPE_KINDS, Scene
from x2vlm_core.data.synthetic.world import SourceEntries, World

DISTRACTORS = 3  # proposals per image besides the shapes' own boxes


def proposals(scene: Scene, rng: random.Random) -> list[list[float]]:
    """What a detector would propose: every shape's box, plus boxes shifted off a shape or anywhere,
    as ``[x, y, w, h, score]``, in random order (so no position in the list is the right answer)."""
    boxes = [[*shape.box, 0.9] for shape in scene.shapes]
    for _ in range(DISTRACTORS):
        x, y, w, h = rng.choice(scene.shapes).box
        if rng.random() < 0.5:  # half a side off a shape: overlaps it, with IoU well under 0.5
            x += rng.choice((-1, 1)) * w // 2
            y += rng.choice((-1, 1)) * h // 2
        else:  # somewhere else, at a shape's size
            x, y = rng.randint(0, scene.width - w), rng.randint(0, scene.height - h)
        x, y = min(max(x, 0), scene.width - w), min(max(y, 0), scene.height - h)
        boxes.append([x, y, w, h, round(rng.uniform(0.3, 0.8), 2)])
    rng.shuffle(boxes)
    return boxes


def write(world: World, coco_images: list[CocoImage]) -> SourceEntries:
    rng = world.rng("refcoco")
    detector = world.rng("refcoco-dets")  # its own stream: the refs and splits stay as they were
    train_images = [image for image in coco_images if image.folder == "train2014"]
    refs, annotations = [], []
    dets: dict[str, list[list[float]]] = {}
    annotation_id = ref_id = sentence_id = 0
    for image in train_images:
        draw = rng.random()
        split = "train" if draw < 0.7 else "val" if draw < 0.8 else "testA" if draw < 0.9 else "testB"
        if image.scene.shapes:
            dets[str(image.image_id)] = proposals(image.scene, detector)
        for shape in image.scene.shapes:
            annotation_id += 1
            x, y, w, h = shape.box
            annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image.image_id,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "category_id": CATEGORY_IDS[shape.kind],
                    "iscrowd": 0,
                }
            )
            texts = [f"{shape.name} {image.scene.position_of(shape)}", f"the {shape.name}"]
            sentences = []
            for text in texts:
                sentences.append({"sent": text, "raw": text, "tokens": tokens(text), "sent_id": sentence_id})
                sentence_id += 1
            refs.append(
                {
                    "ref_id": ref_id,
                    "ann_id": annotation_id,
                    "image_id": image.image_id,
                    "split": split,
                    "sentences": sentences,
                    "category_id": CATEGORY_IDS[shape.kind],
                    # The real file names the annotation too; the image itself is the COCO file.
                    "file_name": f"COCO_train2014_{image.image_id:012d}_{annotation_id}.jpg",
                    "sent_ids": [sentence["sent_id"] for sentence in sentences],
                }
            )
            ref_id += 1
            world.counts[GROUNDING][split] += 1
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.fast = True  # no memo references: bytes depend only on the values, not on object identity
    pickler.dump(refs)
    world.write_bytes("refcoco+/refs(unc).p", buffer.getvalue())
    world.write_json(
        "refcoco+/instances.json",
        {
            "images": [
                {"id": i.image_id, "file_name": i.file_name, "width": world.size, "height": world.size}
                for i in train_images
            ],
            "annotations": annotations,
            "categories": [{"id": CATEGORY_IDS[k], "name": k, "supercategory": "shape"} for k in SHAPE_KINDS],
        },
    )
    world.write_json("refcoco+/dets.json", dets)
    return [
        {
            "format": "refcoco",
            "dataset": GROUNDING,
            "refs": world.path("refcoco+/refs(unc).p"),
            "instances": world.path("refcoco+/instances.json"),
            "dets": world.path("refcoco+/dets.json"),
            "images": world.path("coco/train2014"),
        }
    ]
