"""X²-VLM RegionTextJsonDataset json-lines: ``{"binary": base64, "caption"?: ..., "elems": [{"bb": [x, y, w, h],
"caption": ..., "attributes"?: ...}]}`` per line.

One ``region_text`` record per line: each element caption becomes a region (boxes in pixels),
the optional whole-image ``caption`` becomes ``captions``.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, bbox_field, field_list, iter_json_lines_at, texts_of
from x2vlm_core.data.readers.x2vlm_json import image_input, line_key, parts
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.gcs_path import as_path

KIND = "region_text"
FORMAT = SourceFormat(
    (), (), default_split="train", files_or_folders=("data",), options={"image_key": "binary", "image_is_path": False}
)
__all__ = ["FORMAT", "parts", "read"]


def read(source: Source, part: str | None = None) -> Iterator[dict]:
    for name in [part] if part else parts(source):
        path = as_path(name)
        for line_number, offset, size, entry in iter_json_lines_at(path):
            where = f"line {line_number}"
            regions = []
            for j, elem in enumerate(field_list(entry, "elems", path, where)):
                box = bbox_field(elem, "bb", path, f"{where}.elems[{j}]")
                if box[2] <= 0 or box[3] <= 0:
                    continue  # a zero-area box marks nothing
                attributes = (
                    texts_of(elem["attributes"], path, f"{where}.elems[{j}].attributes")[0]
                    if "attributes" in elem
                    else []
                )
                texts = texts_of(elem.get("caption", ""), path, f"{where}.elems[{j}].caption")[0]
                for text in texts:
                    region = {"bbox": box, "caption": text}
                    if attributes:
                        region["attributes"] = attributes
                    regions.append(region)
            captions = texts_of(entry["caption"], path, f"{where}.caption")[0] if "caption" in entry else []
            image = image_input(source, entry, path, (line_number, offset, size))
            record = base_record(
                source, line_key("x2vlmregion", source, path, line_number), KIND, source.given_split, [image]
            )
            record.update(regions=regions, captions=captions)
            yield record
