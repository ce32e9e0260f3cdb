"""X²-VLM ImageTextJsonDataset json-lines: ``{"binary": base64, "desc": caption}`` per line.

The caption field (``caption_key``, ``desc`` by default; CCLM's multilingual files use
``caption``) holds a string, a list of strings, or ``{language: caption}``. One ``image_text``
record per line; multilingual captions keep their languages in ``caption_languages``.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, iter_json_lines_at, texts_of
from x2vlm_core.data.readers.x2vlm_json import image_input, line_key, parts
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import as_path

KIND = "image_text"
FORMAT = SourceFormat(
    (),
    (),
    default_split="train",
    files_or_folders=("data",),
    options={"image_key": "binary", "caption_key": "desc", "image_is_path": False},
)
__all__ = ["FORMAT", "parts", "read"]


def read(source: Source, part: str | None = None) -> Iterator[dict]:
    caption_key = source.options["caption_key"]
    for name in [part] if part else parts(source):
        path = as_path(name)
        for line_number, offset, size, entry in iter_json_lines_at(path):
            if caption_key not in entry:
                raise DataError(
                    f"{path}: line {line_number} has no '{caption_key}' field; set caption_key to the field holding the caption"
                )
            captions, languages = texts_of(entry[caption_key], path, f"line {line_number}.{caption_key}")
            image = image_input(source, entry, path, (line_number, offset, size))
            record = base_record(
                source, line_key("x2vlm", source, path, line_number), KIND, source.given_split, [image]
            )
            record["captions"] = captions
            if languages:
                record["caption_languages"] = languages
            yield record
