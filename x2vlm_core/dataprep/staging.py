"""Per-element results (counts, shard entries, answers, rejects) on their way from the workers to the driver.

Workers write them as ``<staging>/<name>-NNNNN.jsonl`` files through ``x2vlm_core.storage``, so
that workers on Dataflow/Flink/Spark can write them to gs:// too; the driver reads them back.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Iterable

from x2vlm_core import storage
from x2vlm_core.dataprep.outputs import delete_file


def bucket_of(line: str, buckets: int) -> int:
    """The staged file a line goes to: a stable hash, so a rerun spreads lines the same way."""
    return zlib.crc32(line.encode("utf-8")) % buckets


def write_staged(staging: str, name: str, bucket: int, lines: Iterable[str]) -> None:
    """Write one bucket's JSON lines, sorted, as ``<staging>/<name>-<bucket>.jsonl``."""
    storage.write_bytes(
        storage.join(staging, f"{name}-{bucket:05d}.jsonl"),
        "".join(line + "\n" for line in sorted(lines)).encode("utf-8"),
    )


def read_staged(staging: str, name: str) -> list[dict[str, Any]]:
    """Every entry staged under ``name``, from all its buckets."""
    entries: list[dict[str, Any]] = []
    for uri in storage.list_uris(staging):
        if uri.rsplit("/", 1)[-1].startswith(f"{name}-"):
            entries.extend(
                json.loads(line) for line in storage.read_bytes(uri).decode("utf-8").splitlines() if line.strip()
            )
    return entries


def remove_staging(staging: str) -> None:
    """Delete the staging folder and everything in it."""
    for uri in storage.list_uris(staging):
        delete_file(uri)
    if not storage.is_gcs(staging) and Path(staging).is_dir():
        Path(staging).rmdir()
