"""Shards under a durable data root: ``<data_root>/shards/<content key>/``, and the manifest that names them.

The key is a hash of what decides the output: the sources as loaded (every entry with its paths
resolved, so both the sources file's content and where it lies) and every option that changes the
bytes written (shard size, image side, frames, the data snapshot). The same inputs always name the
same folder, so a retried step rewrites it and KFP's cache, keyed on those inputs, stays truthful;
other inputs name another folder, leaving the shards an earlier run trains on alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from x2vlm_core import storage
from x2vlm_core.data.shard_location import LOCATION_FILE
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.data.sources import Source
from x2vlm_core.dataprep.outputs import CREATED_BY, pretty_json
from x2vlm_core.errors import ConfigError, DataError

SHARDS_FOLDER = "shards"
KEY_HEX_DIGITS = 16  # 64 bits: no two inputs of one data root will meet


def content_key(sources: Sequence[Source], settings: Mapping[str, Any]) -> str:
    """The hash naming the output of ``sources`` prepared with ``settings`` (by this version of the job)."""
    described = {
        "sources": [dataclasses.asdict(source) for source in sources],
        "settings": dict(settings),
        "created_by": CREATED_BY,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]


def shards_location(data_root: str, sources: Sequence[Source], settings: Mapping[str, Any]) -> str:
    """``<data_root>/shards/<content key>``; a local root is made absolute, as a manifest must name it."""
    if not data_root:
        raise ConfigError("data_root is empty; pass a gs://BUCKET/PREFIX (or a local folder) to keep the shards in")
    root = data_root.rstrip("/") if storage.is_gcs(data_root) else str(Path(data_root).expanduser().resolve())
    return storage.join(root, SHARDS_FOLDER, content_key(sources, settings))


def write_manifest(folder: str, shards_uri: str) -> None:
    """Make ``folder`` a manifest of the complete prepare-data output at ``shards_uri``: its index, then ``location.json``."""
    try:
        index = storage.read_bytes(storage.join(shards_uri, INDEX_FILE))
    except storage.NotFound:
        raise DataError(
            f"{shards_uri} has no {INDEX_FILE}: not a complete prepare-data output; run prepare-data into it first"
        ) from None
    storage.write_bytes(storage.join(folder, INDEX_FILE), index)
    storage.write_bytes(storage.join(folder, LOCATION_FILE), pretty_json({"uri": shards_uri}))
