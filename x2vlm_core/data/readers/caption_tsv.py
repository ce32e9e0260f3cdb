"""Caption TSV (Conceptual Captions' ``caption<TAB>url`` layout) whose second column names a local image.

One ``image_text`` record per line. The image column is a path, absolute or relative to
``images``; a line that still names a URL is rejected as ``remote_url`` (download the images
first, e.g. with img2dataset, and read its output instead).
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, key_part, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "image_text"
REMOTE_URL = "remote_url"
FORMAT = SourceFormat(("annotations",), ("images",), default_split="train")


def read(source: Source) -> Iterator[dict]:
    path, images = source.path("annotations"), source.path("images")
    stem = key_part(path.stem)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for line_number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                columns = line.split("\t")
                if len(columns) != 2:
                    raise DataError(
                        f"{path}: line {line_number} has {len(columns)} tab-separated columns, expected 2 (caption, image path or URL)"
                    )
                caption, image = columns[0].strip(), columns[1].strip()
                remote = "://" in image
                record = base_record(
                    source,
                    record_key("tsv", f"{stem}-{line_number:09d}", path),
                    KIND,
                    source.given_split,
                    [image if remote else images / image],
                )
                record.update(image_id=f"{stem}-{line_number}", captions=[caption])
                if remote:
                    record["reader_reject"] = REMOTE_URL
                yield record
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-save the TSV as UTF-8") from None
