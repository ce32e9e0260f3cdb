"""MaRVL (IGLUE), NLVR2-style reasoning over two images, in two layouts:

- IGLUE's json-lines (``marvl-{language}.jsonl``): ``caption``, ``label`` (bool), ``language``,
  ``concept``, ``left_img``, ``right_img`` (and ``id``); the images sit at
  ``images/{language}/images/{concept}/{file}`` (the MaRVL download), or at the path the line gives;
- the NLVR2-style json list the CCLM/X²-VLM code reads (``marvl-{language}.json``):
  ``[{"sentence", "label", "images": [left, right]}]``, image paths relative to ``images``.

One ``nlvr2`` record per statement: ``identifier``, ``sentence``, ``label`` (bool), ``language``
(and ``concept``); two image paths. The language comes from the option, each line, or the file name.
"""

from __future__ import annotations

from typing import Any, Iterator

from x2vlm_core.data.readers.common import (
    base_record,
    field,
    field_list,
    iter_json_lines,
    key_part,
    load_json,
    record_key,
)
from x2vlm_core.data.readers.languages import AUTO, check_language, language_of
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath, as_path

KIND = "nlvr2"
LABELS = {True: True, False: False, "True": True, "False": False, "true": True, "false": False}
FORMAT = SourceFormat(("annotations",), ("images",), default_split="test", options={"language": AUTO})


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    if path.suffix == ".jsonl":
        yield from _read_iglue(source, path)
    else:
        yield from _read_nlvr2_style(source, path)


def _label(entry: Any, path: AnyPath, where: str) -> bool:
    label = field(entry, "label", path, where, (bool, str))
    if label not in LABELS:
        raise DataError(f"{path}: {where}.label is {label!r}, expected true or false")
    return LABELS[label]


def _image(images: AnyPath, language: str, concept: str, name: str) -> AnyPath:
    """The MaRVL download's layout first, then the path as written; a missing image is the image step's reject."""
    candidates = [
        images / language / "images" / concept / name,
        images / name,
        images / language / "all" / as_path(name).name,
    ]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _read_iglue(source: Source, path: AnyPath) -> Iterator[dict]:
    fixed = "" if source.options["language"] == AUTO else source.options["language"]
    for line_number, entry in iter_json_lines(path):
        where = f"line {line_number}"
        language = check_language(fixed or field(entry, "language", path, where, str), f"{path}: {where}.language")
        concept = str(entry.get("concept", ""))
        images = [
            _image(source.path("images"), language, concept, field(entry, name, path, where, str))
            for name in ("left_img", "right_img")
        ]
        ident = entry.get("id")
        ident = key_part(str(ident)) if isinstance(ident, (str, int)) and str(ident) else f"{line_number:09d}"
        yield _record(
            source,
            path,
            language,
            ident,
            images,
            field(entry, "caption", path, where, str),
            _label(entry, path, where),
            concept,
        )


def _read_nlvr2_style(source: Source, path: AnyPath) -> Iterator[dict]:
    language = language_of(source.options["language"], path)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(
            f"{path}: the top level is a {type(data).__name__}; expected a list of {{sentence, label, images}}"
        )
    for index, entry in enumerate(data):
        where = f"[{index}]"
        names = field_list(entry, "images", path, where)
        if len(names) != 2 or not all(isinstance(name, str) for name in names):
            raise DataError(f"{path}: {where}.images is {names!r}, expected the paths of the left and right image")
        images = [source.path("images") / name for name in names]
        yield _record(
            source,
            path,
            language,
            f"{index:09d}",
            images,
            field(entry, "sentence", path, where, str),
            _label(entry, path, where),
            "",
        )


def _record(
    source: Source,
    path: AnyPath,
    language: str,
    ident: str,
    images: list[AnyPath],
    sentence: str,
    label: bool,
    concept: str,
) -> dict:
    record = base_record(
        source, record_key(f"marvl-{language}-{source.given_split}", ident, path), KIND, source.given_split, images
    )
    record.update(identifier=f"{language}-{ident}", sentence=sentence.strip(), label=label, language=language)
    if concept:
        record["concept"] = concept
    return record
