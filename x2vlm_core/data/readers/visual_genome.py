"""Visual Genome region descriptions: one ``region_text`` record per image with all its regions."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Iterator
from urllib.parse import urlparse

from x2vlm_core.data.readers.common import base_record, field, field_list, load_json, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

KIND = "region_text"
FORMAT = SourceFormat(("regions", "image_data"), ("images",), default_split="train")


def read(source: Source) -> Iterator[dict]:
    files = image_files(source.path("image_data"), source.path("images"))
    path = source.path("regions")
    for i, entry in enumerate(top_level_list(path)):
        image_id = field(entry, "id", path, f"[{i}]", int)
        if image_id not in files:
            raise DataError(
                f"{path}: [{i}] describes image {image_id}, which {source.path('image_data')} does not list"
            )
        regions = []
        for j, region in enumerate(field_list(entry, "regions", path, f"[{i}]")):
            where = f"[{i}].regions[{j}]"
            x, y, width, height = (
                field(region, name, path, where, (int, float)) for name in ("x", "y", "width", "height")
            )
            # Degenerate and out-of-image boxes are kept here: the image step fits them to the image and counts them.
            regions.append(
                {
                    "bbox": [float(x), float(y), float(width), float(height)],
                    "caption": field(region, "phrase", path, where, str).strip(),
                }
            )
        # An image without regions is still a record: it ends up in rejects.jsonl, not nowhere.
        record = base_record(source, record_key("vg", image_id, path), KIND, source.given_split, [files[image_id]])
        record.update(image_id=image_id, regions=regions, captions=[])
        yield record


def top_level_list(path: AnyPath) -> list[Any]:
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON list at the top level, got {type(data).__name__}; is this the right file?"
        )
    return data


def image_files(image_data_path: AnyPath, images_root: AnyPath) -> dict[int, AnyPath]:
    """image_id -> file. The url's last two parts (e.g. VG_100K_2/1.jpg) give the folder under ``images``."""
    files = {}
    for i, entry in enumerate(top_level_list(image_data_path)):
        image_id = field(entry, "image_id", image_data_path, f"[{i}]", int)
        url_path = PurePosixPath(urlparse(field(entry, "url", image_data_path, f"[{i}]", str)).path)
        files[image_id] = images_root / url_path.parent.name / url_path.name
    return files
