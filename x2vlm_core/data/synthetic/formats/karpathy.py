"""The Karpathy split of COCO (coco/dataset_coco.json): every COCO image with its split and five sentences."""

from __future__ import annotations

from x2vlm_core.data.synthetic.captions import tokens
from x2vlm_core.data.synthetic.datasets import RETRIEVAL
from x2vlm_core.data.synthetic.formats.coco_captions import CocoImage
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, coco_images: list[CocoImage]) -> SourceEntries:
    karpathy_images = []
    sentence_id = 0
    for imgid, image in enumerate(coco_images):
        sentences = []
        for caption in image.captions:
            sentences.append({"raw": caption, "tokens": tokens(caption), "sentid": sentence_id, "imgid": imgid})
            sentence_id += 1
        karpathy_images.append(
            {
                "filepath": image.folder,
                "filename": image.file_name,
                "imgid": imgid,
                "cocoid": image.image_id,
                "split": image.karpathy_split,
                "sentences": sentences,
                "sentids": [sentence["sentid"] for sentence in sentences],
            }
        )
        world.counts[RETRIEVAL][image.karpathy_split] += 1
    world.write_json("coco/dataset_coco.json", {"images": karpathy_images, "dataset": "coco"})
    return [
        {
            "format": "karpathy",
            "dataset": RETRIEVAL,
            "annotations": world.path("coco/dataset_coco.json"),
            "images": world.path("coco"),
        }
    ]
