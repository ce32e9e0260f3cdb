"""A prepare-data output held by reference: a folder whose ``location.json`` names where the shards are.

With a durable data root, prepare-data writes its shards to ``<data_root>/shards/<content key>/``
and its Dataset artifact is a manifest only: ``index.json`` (a copy) and ``location.json``
(``{"uri": ...}``). The KFP launcher copies every input artifact into the pod that consumes it; a
manifest keeps that copy to a few KB, and the stages stream the shards from the URI it names.
A folder without ``location.json`` holds its shards itself (the CLI's output, or no data root).
"""

from __future__ import annotations

import json
import os

from x2vlm_core import storage
from x2vlm_core.errors import DataError

LOCATION_FILE = "location.json"


def follow_manifest(folder: str | os.PathLike) -> str:
    """Where the shards of ``folder`` are: the URI its ``location.json`` names, else ``folder`` itself."""
    location = storage.join(folder, LOCATION_FILE)
    try:
        raw = storage.read_bytes(location)
    except storage.NotFound:
        return str(folder)
    try:
        uri = json.loads(raw.decode("utf-8"))["uri"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        uri = None
    # Absolute only: a relative location would depend on where the manifest was copied to.
    if not isinstance(uri, str) or not (storage.is_gcs(uri) or os.path.isabs(uri)):
        raise DataError(
            f'{location}: expected {{"uri": "gs://... or an absolute path"}}, the shards\' location; re-run prepare-data'
        )
    return uri
