"""Visual Genome objects (objects.json): one ``region_text`` record per image, each object's name as a region phrase."""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, field_list, record_key
from x2vlm_core.data.readers.visual_genome import KIND, image_files, top_level_list
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

FORMAT = SourceFormat(("objects", "image_data"), ("images",), default_split="train")


def read(source: Source) -> Iterator[dict]:
    files = image_files(source.path("image_data"), source.path("images"))
    path = source.path("objects")
    for i, entry in enumerate(top_level_list(path)):
        image_id = field(entry, "image_id", path, f"[{i}]", int)
        if image_id not in files:
            raise DataError(
                f"{path}: [{i}] describes image {image_id}, which {source.path('image_data')} does not list"
            )
        regions = []
        for j, obj in enumerate(field_list(entry, "objects", path, f"[{i}]")):
            where = f"[{i}].objects[{j}]"
            x, y, width, height = (field(obj, name, path, where, (int, float)) for name in ("x", "y", "w", "h"))
            names = field_list(obj, "names", path, where)
            if names and not isinstance(names[0], str):
                raise DataError(f"{path}: {where}.names[0] is {names[0]!r}, expected a string; fix the file")
            # An unnamed object is an empty phrase (dropped and counted); its box is fitted and counted by the image step.
            region = {
                "bbox": [float(x), float(y), float(width), float(height)],
                "caption": names[0].strip() if names else "",
            }
            attributes = [a.strip() for a in obj.get("attributes", []) if isinstance(a, str) and a.strip()]
            if attributes:
                region["attributes"] = attributes
            regions.append(region)
        # Objects and region descriptions of one image may share a dataset: the prefix keeps their keys apart.
        record = base_record(source, record_key("vgobj", image_id, path), KIND, source.given_split, [files[image_id]])
        record.update(image_id=image_id, regions=regions, captions=[])
        yield record
