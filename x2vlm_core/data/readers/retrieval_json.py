"""X-VLM/CCLM retrieval json, one file per language: multilingual COCO (``zh.train.json``, ``ja.1k_test.json``)
and CCLM's Multi30K copies (``train.de.json``).

A list of ``{"image": path, "caption": text or [texts], "image_id"?}``: train files repeat an image
once per caption, test files list its captions. One ``image_text`` record per image (its entries
merged, in file order): ``image_id`` (the file's, else the image path's stem), ``captions``,
``caption_languages``; image paths are relative to ``images``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, key_part, load_json, record_key, texts_of
from x2vlm_core.data.readers.languages import AUTO, language_of
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "image_text"
FORMAT = SourceFormat(("annotations",), ("images",), default_split="test", options={"language": AUTO})


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    language = language_of(source.options["language"], path)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(
            f"{path}: the top level is a {type(data).__name__}; expected a list of {{image, caption}} entries"
        )
    images: dict[str, dict] = {}
    for index, entry in enumerate(data):
        where = f"[{index}]"
        image = field(entry, "image", path, where, str)
        captions, _ = texts_of(field(entry, "caption", path, where, (str, list)), path, f"{where}.caption")
        merged = images.setdefault(image, {"image_id": entry.get("image_id", Path(image).stem), "captions": []})
        merged["captions"].extend(captions)
    for image, merged in images.items():
        image_id = merged["image_id"]
        if not isinstance(image_id, (str, int)) or isinstance(image_id, bool):
            raise DataError(f"{path}: image {image!r} has image_id {image_id!r}; expected a string or an integer")
        record = base_record(
            source,
            record_key(f"retrieval-{language}-{source.given_split}", key_part(str(image_id)), path),
            KIND,
            source.given_split,
            [source.path("images") / image],
        )
        record.update(
            image_id=image_id, captions=merged["captions"], caption_languages=[language] * len(merged["captions"])
        )
        yield record
