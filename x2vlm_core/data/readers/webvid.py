"""WebVid-2M/10M (``results_*.csv``: ``videoid,name,page_dir,...`` + ``<videos>/<page_dir>/<videoid>.mp4``).

One ``video_text`` record per row; the image step samples its frames.
"""

from __future__ import annotations

import csv
from typing import Iterator

from x2vlm_core.data.readers.common import base_record, key_part, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "video_text"
REQUIRED_COLUMNS = ("videoid", "name", "page_dir")
# A partial download is normal: every video not (yet) on disk is a missing_file reject, even with no videos folder.
FORMAT = SourceFormat(
    ("annotations",), ("videos",), default_split="train", options={"video_extension": "mp4"}, may_be_missing=("videos",)
)


def read(source: Source) -> Iterator[dict]:
    path, videos, extension = source.path("annotations"), source.path("videos"), source.options["video_extension"]
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.DictReader(handle)
            missing = [name for name in REQUIRED_COLUMNS if name not in (rows.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{path}: no column(s) {missing} in the header {rows.fieldnames}; is this a WebVid results csv?"
                )
            for row_number, row in enumerate(rows, start=2):
                video_id, page_dir = (row["videoid"] or "").strip(), (row["page_dir"] or "").strip()
                if not video_id or not page_dir or "/" in video_id or ".." in page_dir:
                    raise DataError(
                        f"{path}: line {row_number} has videoid {video_id!r} / page_dir {page_dir!r}; both must be plain names"
                    )
                record = base_record(
                    source,
                    record_key("webvid", key_part(video_id), path),
                    KIND,
                    source.given_split,
                    [videos / page_dir / f"{video_id}.{extension}"],
                )
                record.update(video_id=video_id, captions=[(row["name"] or "").strip()])
                yield record
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-save the csv as UTF-8") from None
    except csv.Error as error:
        raise DataError(f"{path}: not a readable csv ({error}); re-download the file") from None
