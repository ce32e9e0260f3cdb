"""Karpathy split files (dataset_coco.json, dataset_flickr30k.json): one ``image_text`` record per image."""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, field_list, load_json, record_key
from x2vlm_core.data.sources import SAFE_NAME, Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "image_text"
FORMAT = SourceFormat(("annotations",), ("images",), default_split=None)


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    for i, image in enumerate(field_list(load_json(path), "images", path, "the top level")):
        where = f"images[{i}]"
        # COCO entries carry the COCO id; Flickr30k entries only their index.
        id_field = "cocoid" if isinstance(image, dict) and "cocoid" in image else "imgid"
        image_id = field(image, id_field, path, where, int)
        split = field(image, "split", path, where, str)
        if not SAFE_NAME.fullmatch(split):
            raise DataError(f"{path}: {where}.split is {split!r}; expected a name like train/val/test/restval")
        # Flickr30k entries have no 'filepath': their images sit directly in the images folder.
        folder = field(image, "filepath", path, where, str) if "filepath" in image else ""
        image_path = source.path("images") / folder / field(image, "filename", path, where, str)
        sentences = field_list(image, "sentences", path, where)
        captions = [
            field(sentence, "raw", path, f"{where}.sentences[{j}]", str).strip() for j, sentence in enumerate(sentences)
        ]
        record = base_record(source, record_key("karpathy", image_id, path), KIND, split, [image_path])
        record.update(image_id=image_id, captions=captions)
        yield record
