"""What the IGLUE-style cross-lingual sets (XVNLI, xGQA, MaRVL, xFlickr&CO) share: their images, copies of the
COCO scenes, how the COCO images divide into their parts, and how each annotation file becomes a source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from x2vlm_core.data.synthetic.formats.coco_captions import CocoImage
from x2vlm_core.data.synthetic.world import SourceEntries, World

IGLUE_IMAGES = "iglue/images"  # copies of COCO scenes: damaging a COCO file leaves these sets whole


@dataclass(frozen=True)
class IglueParts:
    """The COCO images of each part of the cross-lingual sets: English train and dev, target-language
    few-shot pool (train images), and the test images, captioned in English and in shapes-speak."""

    train: list[CocoImage]
    few_shot: list[CocoImage]
    dev: list[CocoImage]
    test: list[CocoImage]

    def all(self) -> list[CocoImage]:
        return self.train + self.few_shot + self.dev + self.test


def write_images(world: World, coco_images: list[CocoImage]) -> IglueParts:
    """Copy the COCO images into iglue/images; divide them into the sets' parts."""
    train = [image for image in coco_images if image.folder == "train2014"]
    held_out = [image for image in coco_images if image.folder == "val2014"]
    for image in train + held_out:
        world.write_bytes(
            f"{IGLUE_IMAGES}/{image.file_name}", (world.root / "coco" / image.folder / image.file_name).read_bytes()
        )
    few, dev = max(1, len(train) // 5) if len(train) > 1 else 0, len(held_out) // 3
    return IglueParts(train=train[few:], few_shot=train[:few], dev=held_out[:dev], test=held_out[dev:])


def stem(image: CocoImage) -> str:
    return Path(image.file_name).stem


def write_annotations(
    world: World,
    relative: str,
    text: str,
    records: int,
    format_name: str,
    dataset: str,
    split: str,
    paths: dict[str, str],
) -> SourceEntries:
    """Write one annotation file of ``records`` records; its source entry (none for an empty part: nothing is written)."""
    if not records:
        return []
    world.write_bytes(relative, text.encode("utf-8"))
    world.counts[dataset][split] += records
    return [{"format": format_name, "dataset": dataset, "split": split, "annotations": world.path(relative), **paths}]
