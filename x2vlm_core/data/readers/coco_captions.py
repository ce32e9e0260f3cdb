"""COCO captions (captions_train2014.json): one ``image_text`` record per image with all its captions."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, field_list, load_json, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "image_text"
NO_CAPTION = "no_caption"
FORMAT = SourceFormat(("annotations",), ("images",), default_split="train")


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    data = load_json(path)
    images = field_list(data, "images", path, "the top level")
    annotations = field_list(data, "annotations", path, "the top level")

    image_ids = {field(image, "id", path, f"images[{i}]", int) for i, image in enumerate(images)}
    captions: dict[int, list[str]] = defaultdict(list)
    for i, annotation in enumerate(annotations):
        image_id = field(annotation, "image_id", path, f"annotations[{i}]", int)
        if image_id not in image_ids:
            raise DataError(f"{path}: annotations[{i}] refers to image_id {image_id}, which 'images' does not list")
        captions[image_id].append(field(annotation, "caption", path, f"annotations[{i}]", str).strip())

    for i, image in enumerate(images):
        image_id = image["id"]
        file_name = field(image, "file_name", path, f"images[{i}]", str)
        record = base_record(
            source, record_key("coco", image_id, path), KIND, source.given_split, [source.path("images") / file_name]
        )
        record.update(image_id=image_id, captions=captions.get(image_id, []))
        if not record["captions"]:
            # Listed but never captioned: nothing to train on, yet it must show up in the counts and rejects.
            record["reader_reject"] = NO_CAPTION
        yield record
