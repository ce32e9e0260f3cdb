"""RefCOCO / RefCOCO+ / RefCOCOg (refs(unc).p + instances.json): one ``grounding`` record per ref.

An optional ``dets`` file (the official ``dets.json``: image id -> detector boxes, each
``[x, y, w, h, ...]`` in pixels) gives each record its image's ``proposals`` [[x, y, w, h], ...],
which weakly supervised grounding chooses among.
"""

from __future__ import annotations

import pickle
from typing import Any, Iterator

from x2vlm_core.data.readers.common import base_record, bbox_field, field, field_list, load_json, record_key
from x2vlm_core.data.sources import SAFE_NAME, Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

KIND = "grounding"
FORMAT = SourceFormat(("refs", "instances", "dets"), ("images",), default_split=None, optional=("dets",))


class _GlobalRefused(Exception):
    """The pickle names a global (a class or function): loading it could run code."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads only lists, dicts, strings and numbers: any global would let the file run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise _GlobalRefused(f"{module}.{name}")


def load_refs(path: AnyPath) -> list[Any]:
    """Read the refs pickle without executing anything it names."""
    try:
        with path.open("rb") as handle:
            # The published files come from Python 2; their byte strings are UTF-8 text.
            refs = _PlainDataUnpickler(handle, encoding="utf-8").load()
    except _GlobalRefused as error:
        raise DataError(
            f"{path}: refused to load: the pickle needs code ({error}), but a refs file holds only plain data; use the original refs file"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        UnicodeDecodeError,
        AttributeError,
    ) as error:
        raise DataError(
            f"{path}: not a readable refs pickle ({type(error).__name__}: {error}); re-download the file"
        ) from None
    if not isinstance(refs, list):
        raise DataError(f"{path}: expected a pickled list of refs, got {type(refs).__name__}")
    return refs


def load_dets(path: AnyPath) -> dict[int, list[list[float]]]:
    """``dets.json`` as image id -> boxes ``[x, y, w, h]`` (a detector's extra numbers, e.g. its score, dropped)."""
    dets = load_json(path)
    if not isinstance(dets, dict):
        raise DataError(f"{path}: expected an object of image id -> detection boxes, got {type(dets).__name__}")
    proposals = {}
    for image_id, boxes in dets.items():
        if not str(image_id).isdigit() or not isinstance(boxes, list):
            raise DataError(f"{path}: entry {image_id!r} is not an image id with a list of boxes; is this dets.json?")
        for j, box in enumerate(boxes):
            if (
                not isinstance(box, list)
                or len(box) < 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box[:4])
            ):
                raise DataError(f"{path}: {image_id}[{j}] is {box!r}, expected [x, y, width, height, ...] numbers")
        proposals[int(image_id)] = [[float(v) for v in box[:4]] for box in boxes]
    return proposals


def read(source: Source) -> Iterator[dict]:
    instances_path = source.path("instances")
    instances = load_json(instances_path)
    image_files = {
        field(image, "id", instances_path, f"images[{i}]", int): field(
            image, "file_name", instances_path, f"images[{i}]", str
        )
        for i, image in enumerate(field_list(instances, "images", instances_path, "the top level"))
    }
    boxes = {
        field(annotation, "id", instances_path, f"annotations[{i}]", int): bbox_field(
            annotation, "bbox", instances_path, f"annotations[{i}]"
        )
        for i, annotation in enumerate(field_list(instances, "annotations", instances_path, "the top level"))
    }

    dets = load_dets(source.path("dets")) if "dets" in source.paths else {}

    refs_path = source.path("refs")
    for i, ref in enumerate(load_refs(refs_path)):
        where = f"refs[{i}]"
        ref_id = field(ref, "ref_id", refs_path, where, int)
        ann_id = field(ref, "ann_id", refs_path, where, int)
        image_id = field(ref, "image_id", refs_path, where, int)
        split = field(ref, "split", refs_path, where, str)
        if not SAFE_NAME.fullmatch(split):
            raise DataError(f"{refs_path}: {where}.split is {split!r}; expected a name like train/val/testA/testB")
        if ann_id not in boxes or image_id not in image_files:
            raise DataError(
                f"{refs_path}: {where} names ann_id {ann_id} / image_id {image_id}, missing from {instances_path}; use the instances.json shipped with these refs"
            )
        sentences = [
            field(sentence, "raw", refs_path, f"{where}.sentences[{j}]", str).strip()
            for j, sentence in enumerate(field_list(ref, "sentences", refs_path, where))
        ]
        # The refs' own file_name carries an annotation suffix; the image file is the COCO one.
        image_path = source.path("images") / image_files[image_id]
        record = base_record(source, record_key("refcoco", ref_id, refs_path), KIND, split, [image_path])
        record.update(ref_id=ref_id, image_id=image_id, sentences=sentences, bbox=boxes[ann_id])
        if image_id in dets:
            record["proposals"] = dets[image_id]
        yield record
