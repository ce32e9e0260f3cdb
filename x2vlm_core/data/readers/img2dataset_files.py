"""img2dataset "files" output (Conceptual Captions 3M/12M, ...): ``NNNNN.parquet`` beside a folder
``NNNNN/`` of ``<key>.jpg`` images; one ``image_text`` record per parquet row.

Rows whose download failed (``status`` other than ``success``) are records too, rejected as
``download_failed``, so the counts show every URL of the list. Each parquet file is one part.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, key_part, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.gcs_path import AnyPath, as_path

KIND = "image_text"
REQUIRED_COLUMNS = ("key", "caption", "status")
DOWNLOAD_FAILED = "download_failed"
FORMAT = SourceFormat((), ("folder",), default_split="train", options={"image_extension": "jpg"})


def parts(source: Source) -> list[str]:
    files = sorted(str(path) for path in source.path("folder").glob("*.parquet"))
    if not files:
        raise DataError(
            f"{source.path('folder')}: no .parquet files; point 'folder' at img2dataset's output folder (output_format=files)"
        )
    return files


def read(source: Source, part: str | None = None) -> Iterator[dict]:
    for parquet in [part] if part else parts(source):
        yield from _read_parquet(source, as_path(parquet))


def _read_parquet(source: Source, path: AnyPath) -> Iterator[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("img2dataset_files sources need pyarrow: pip install 'x2vlm-platform[beam]'") from None
    try:
        with path.open("rb") as handle:
            table = pq.read_table(handle)
    except Exception as error:  # pyarrow raises its own ArrowInvalid/OSError family for damaged files
        raise DataError(
            f"{path}: not a readable parquet file ({type(error).__name__}: {error}); re-download it".splitlines()[0]
        ) from None
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: no column(s) {missing}; is this an img2dataset parquet (columns {table.column_names})?"
        )
    images = path.with_suffix("")  # 00000.parquet describes the images in 00000/
    extension = source.options["image_extension"]
    if not images.is_dir():
        # One line instead of a missing_file reject per row: the whole folder was never downloaded or was moved.
        raise DataError(
            f"{path}: no image folder {images.name}/ beside it; img2dataset's files layout is "
            f"{path.name} + {images.name}/<key>.{extension}, so download the images (output_format=files) or move the folder back"
        )
    columns = table.select(
        list(REQUIRED_COLUMNS) + (["error_message"] if "error_message" in table.column_names else [])
    ).to_pylist()
    for row_number, row in enumerate(columns):
        key = row["key"]
        if not isinstance(key, str) or not key:
            raise DataError(f"{path}: row {row_number} has key {key!r}; expected img2dataset's string key")
        record = base_record(
            source,
            record_key("img2dataset", key_part(f"{source.path('folder').name}-{key}"), path),
            KIND,
            source.given_split,
            [images / f"{key}.{extension}"],
        )
        caption = row["caption"]
        record.update(image_id=key, captions=[caption.strip() if isinstance(caption, str) else ""])
        if row["status"] != "success":
            record["reader_reject"] = DOWNLOAD_FAILED
        yield record
