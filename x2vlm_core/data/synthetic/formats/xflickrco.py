"""xFlickr&CO json-lines (iglue/xFlickrCO/annotations/{language}/{split}.jsonl): id, img_path, sentences."""

from __future__ import annotations

from x2vlm_core.data.synthetic.datasets import XFLICKRCO
from x2vlm_core.data.synthetic.formats.iglue import IGLUE_IMAGES, IglueParts, write_annotations
from x2vlm_core.data.synthetic.shapes_speak import SYNTHETIC_LANGUAGE, translate
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_line


def write(world: World, parts: IglueParts) -> SourceEntries:
    images = world.path(IGLUE_IMAGES)
    sources = []
    for split, chosen, languages in (
        ("train", parts.train, ["en"]),
        ("test", parts.test, ["en", SYNTHETIC_LANGUAGE]),
        ("few_shot", parts.few_shot, [SYNTHETIC_LANGUAGE]),
    ):
        for language in languages:
            say = translate if language == SYNTHETIC_LANGUAGE else str
            lines = [
                json_line(
                    {
                        "id": image.image_id,
                        "img_path": image.file_name,
                        "sentences": [say(caption) for caption in image.captions[:2]],
                    }
                )
                for image in chosen
            ]
            name = "train" if split == "few_shot" else split
            # The shapes world has one image folder; the reader takes Flickr30K and COCO images from two.
            sources += write_annotations(
                world,
                f"iglue/xFlickrCO/annotations/{language}/{name}.jsonl",
                "".join(lines),
                len(lines),
                "xflickrco",
                XFLICKRCO,
                split,
                {"flickr30k_images": images, "coco_images": images},
            )
    return sources
