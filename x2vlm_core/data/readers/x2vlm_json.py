"""The shared part of the official X²-VLM json-lines readers: files, keys and the image field.

Each line is one JSON object whose image is base64 in ``image_key`` (``binary``), or a path
when ``image_is_path`` is set (X²-VLM's ``is_image_rpath``). A source names one file or a
folder of part files; each file is one part, read on its own worker.
"""

from __future__ import annotations

from typing import Any

from x2vlm_core.data.images import input_reference
from x2vlm_core.data.readers.common import key_part, record_key
from x2vlm_core.data.sources import Source
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath, relative_to


def parts(source: Source) -> list[str]:
    files = [str(path) for path in source.files("data")]
    if not files:
        raise DataError(f"{source.path('data')}: an empty folder; point 'data' at the json-lines file(s)")
    return files


def line_key(prefix: str, source: Source, path: AnyPath, line_number: int) -> str:
    """``prefix-<folder>-<file>-<line>``: the data folder's name keeps two downloads' part-00000 files apart."""
    root = source.path("data")
    name = path.stem if root == path else f"{root.name}-{relative_to(path, root).with_suffix('')}"
    return record_key(prefix, f"{key_part(name)}-{line_number:09d}", path)


def image_input(source: Source, entry: dict[str, Any], path: AnyPath, line: tuple[int, int, int]) -> str:
    """The image input of one line: a reference to the line's base64 field, or the path it names."""
    image_key = source.options["image_key"]
    line_number, offset, size = line
    if source.options["image_is_path"]:
        value = entry.get(image_key)
        if not isinstance(value, str) or not value:
            raise DataError(
                f"{path}: line {line_number}.{image_key} is {value!r}, expected an image path (image_is_path is set)"
            )
        return str(path.parent / value)
    if image_key not in entry:
        raise DataError(
            f"{path}: line {line_number} has no '{image_key}' field; set image_key to the field holding the base64 image"
        )
    return input_reference(path, line=line_number, offset=offset, size=size, base64=image_key)
