"""NLVR2 (train.json / dev.json / test1.json, JSON lines): one ``nlvr2`` record per statement."""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, iter_json_lines, record_key
from x2vlm_core.data.sources import SAFE_NAME, Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

KIND = "nlvr2"
LABELS = {"True": True, "False": False}
FORMAT = SourceFormat(("annotations",), ("images",), default_split=None)


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    for line_number, entry in iter_json_lines(path):
        where = f"line {line_number}"
        identifier = field(entry, "identifier", path, where, str)
        # Identifiers are split-set-pair-sentence; the images are named split-set-pair-img0/1.png.
        split, pair_name = identifier.split("-", 1)[0], identifier.rsplit("-", 1)[0]
        if not SAFE_NAME.fullmatch(split) or pair_name == identifier:
            raise DataError(f"{path}: {where}.identifier {identifier!r} is not of the form split-set-pair-sentence")
        label = field(entry, "label", path, where, str)
        if label not in LABELS:
            raise DataError(f"{path}: {where}.label is {label!r}, expected 'True' or 'False'")
        folder = _image_folder(source.path("images") / split, entry.get("directory"), pair_name)
        image_paths = [folder / f"{pair_name}-img0.png", folder / f"{pair_name}-img1.png"]
        record = base_record(source, record_key("nlvr2", identifier, path), KIND, split, image_paths)
        record.update(
            identifier=identifier, sentence=field(entry, "sentence", path, where, str).strip(), label=LABELS[label]
        )
        yield record


def _image_folder(split_folder: AnyPath, directory: object, pair_name: str) -> AnyPath:
    """The real train images sit in numbered sub-folders ('directory'); dev/test1 and flat copies do not."""
    if directory is not None:
        nested = split_folder / str(directory)
        if (nested / f"{pair_name}-img0.png").is_file():
            return nested
    return split_folder
