"""The job's result files beside the shards: their names, their stamp, and how one is written or removed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from x2vlm_core import __version__, storage

STATS_FILE = "stats.json"
REJECTS_FILE = "rejects.jsonl"
ANSWERS_FILE = "answers.json"
# Stamped into index.json and stats.json; unchanged since the job moved here, so outputs stay byte-identical.
CREATED_BY = f"x2vlm_core {__version__} components.prepare_data"


def pretty_json(obj: Any) -> bytes:
    """Sorted, indented JSON: the same content always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, indent=2).encode("utf-8") + b"\n"


def write_file(uri: str, data: bytes) -> None:
    """Write a whole file: locally beside it, fsynced and renamed into place; on gs:// in one upload."""
    if storage.is_gcs(uri):
        storage.write_bytes(uri, data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def delete_file(uri: str) -> None:
    """Remove a local file or gs:// object if it exists."""
    if storage.is_gcs(uri):
        blob = storage.blob(uri)
        if blob.exists():
            blob.delete()
    else:
        Path(uri).unlink(missing_ok=True)
