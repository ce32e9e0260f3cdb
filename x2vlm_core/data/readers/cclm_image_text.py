"""CCLM's multilingual image-caption json-lines (``ImageMultiTextDataset``): translated caption sets.

Each line: the image (base64 in ``image_key``, ``binary``; or a path with ``image_is_path``) and
``caption_key`` (``caption``) holding ``{language: caption}``, or a list of such mappings (several
captions of the image, each in several languages), e.g. UC2's translated CC3M. One ``image_text``
record per line, with ``caption_languages`` beside ``captions`` and the line's ``image_id`` if any.
Every caption must carry its language: untagged files are read by ``x2vlm_image_text``. Which
languages are trained on is chosen when batching (``families.cclm.collate``), so all are kept here.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, iter_json_lines_at, texts_of
from x2vlm_core.data.readers.languages import check_language
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
    options={"image_key": "binary", "caption_key": "caption", "image_is_path": False},
)
__all__ = ["FORMAT", "parts", "read"]


def read(source: Source, part: str | None = None) -> Iterator[dict]:
    caption_key = source.options["caption_key"]
    for name in [part] if part else parts(source):
        path = as_path(name)
        for line_number, offset, size, entry in iter_json_lines_at(path):
            where = f"line {line_number}.{caption_key}"
            if caption_key not in entry:
                raise DataError(
                    f"{path}: line {line_number} has no '{caption_key}' field; set caption_key to the field holding the captions"
                )
            captions, languages = texts_of(entry[caption_key], path, where)
            if languages is None or not all(languages):
                raise DataError(
                    f"{path}: {where} has captions without a language; CCLM files map each language to its "
                    'caption ({"en": ..., "de": ...}); read untagged files with the x2vlm_image_text format'
                )
            for language in set(languages):
                check_language(language, f"{path}: {where}")
            image = image_input(source, entry, path, (line_number, offset, size))
            record = base_record(source, line_key("cclm", source, path, line_number), KIND, source.given_split, [image])
            record.update(captions=captions, caption_languages=languages)
            if isinstance(entry.get("image_id"), (str, int)) and not isinstance(entry.get("image_id"), bool):
                record["image_id"] = entry["image_id"]
            yield record
