"""IGLUE xFlickr&CO (``xFlickrCO/annotations/{language}/test.jsonl``, ``flickr30k/annotations/*_ann.jsonl``).

Each line: ``id``, ``img_path`` and ``sentences`` (the image's captions in the file's language).
Images named ``COCO_...`` come from COCO's ``val2014`` (``coco_images``), the others from
Flickr30K (``flickr30k_images``). One ``image_text`` record per image: ``image_id``, ``captions``,
``caption_languages``.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, field_list, iter_json_lines, key_part, record_key
from x2vlm_core.data.readers.languages import AUTO, language_of
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "image_text"
FORMAT = SourceFormat(
    ("annotations",), ("flickr30k_images", "coco_images"), default_split="test", options={"language": AUTO}
)


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    language = language_of(source.options["language"], path)
    for line_number, entry in iter_json_lines(path):
        where = f"line {line_number}"
        image_id = str(field(entry, "id", path, where, (str, int)))
        image_path = field(entry, "img_path", path, where, str)
        folder = source.path("coco_images" if "COCO" in image_path else "flickr30k_images")
        captions = field_list(entry, "sentences", path, where)
        if not all(isinstance(caption, str) for caption in captions):
            raise DataError(f"{path}: {where}.sentences holds a non-string; expected a list of captions")
        record = base_record(
            source,
            record_key(f"xflickrco-{language}-{source.given_split}", key_part(image_id), path),
            KIND,
            source.given_split,
            [folder / image_path],
        )
        record.update(
            image_id=image_id, captions=[c.strip() for c in captions], caption_languages=[language] * len(captions)
        )
        yield record
