"""An output as a whole: index.json marks it complete, and only the files it names belong to it.

GCS has no atomic rename, so the commit point is the last write, ``index.json``, on local disk and
on gs:// alike. A folder without it is an unfinished run (a retried step meets one): its files are
cleared and rebuilt. A complete output is replaced only on request: the new run is built beside it
(``.prepare-build-*``), the old index is removed, the new files are moved into place, the new index
is written, and only then are the old files that the new index does not name removed.

Only files this job's layout can hold are ever removed (stats, rejects, ``<dataset>/answers.json``,
``<dataset>/<split>-NNNNN.tar``, leftover staging and build folders); anything else in the folder is
left alone, and never counts as part of the output.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Iterable

from x2vlm_core import storage
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.dataprep.outputs import ANSWERS_FILE, REJECTS_FILE, STATS_FILE, delete_file
from x2vlm_core.errors import ConfigError

SHARD_NAME = re.compile(r"[A-Za-z0-9_-]+-\d{5}\.tar")
STAGING_PREFIX = ".prepare-staging-"
BUILD_PREFIX = ".prepare-build-"
_TEMPORARY = re.compile(r".*\.tmp-\d+")


def is_complete(out: str) -> bool:
    return storage.exists(storage.join(out, INDEX_FILE))


def refuse_complete(out: str, overwrite: bool) -> None:
    """A run into a complete output needs ``overwrite``: it would replace every file of it."""
    if not overwrite and is_complete(out):
        raise ConfigError(
            f"{out} already holds a complete prepare-data output ({INDEX_FILE}); pass --overwrite to replace it, or choose another --output"
        )


def named_files(index: dict[str, Any], answer_files: Iterable[str]) -> set[str]:
    """The relative paths an output consists of: its shards, result files and answer lists."""
    shards = {
        shard["path"] for splits in index["datasets"].values() for entry in splits.values() for shard in entry["shards"]
    }
    return shards | {INDEX_FILE, STATS_FILE, REJECTS_FILE} | set(answer_files)


def job_files(out: str) -> list[str]:
    """Every file under ``out`` that this job's layout can hold (relative paths); other files are not ours."""
    found = []
    for uri in storage.list_uris(out):
        relative = uri[len(out.rstrip("/")) + 1 :]
        parts = relative.split("/")
        ours = (
            parts[0].startswith((STAGING_PREFIX, BUILD_PREFIX))
            or (len(parts) == 1 and parts[0] in (INDEX_FILE, STATS_FILE, REJECTS_FILE))
            or (len(parts) == 2 and (parts[1] == ANSWERS_FILE or SHARD_NAME.fullmatch(parts[1])))
            or bool(_TEMPORARY.fullmatch(parts[-1]))
        )
        if ours:
            found.append(relative)
    return found


def clear(out: str, keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Remove this job's files under ``out`` except ``keep``; return what was removed."""
    removed = [relative for relative in job_files(out) if relative not in keep]
    for relative in removed:
        delete_file(storage.join(out, relative))
    if not storage.is_gcs(out):
        for folder in Path(out).glob(".prepare-*"):
            if folder.is_dir() and folder.name.startswith((STAGING_PREFIX, BUILD_PREFIX)):
                shutil.rmtree(folder, ignore_errors=True)
    return removed


def clear_leftovers(out: str) -> None:
    """Remove the staging and build folders of runs that stopped half-way; the output itself stays."""
    clear(
        out, keep={relative for relative in job_files(out) if not relative.startswith((STAGING_PREFIX, BUILD_PREFIX))}
    )


def move_into_place(build: str, out: str, relatives: Iterable[str]) -> None:
    """Move the files of a finished build folder to the same relative paths under ``out``."""
    for relative in sorted(relatives):
        source, target = storage.join(build, relative), storage.join(out, relative)
        if storage.is_gcs(out):
            blob = storage.blob(source)
            blob.bucket.copy_blob(blob, storage.blob(target).bucket, storage.parse_gcs(target)[1])
            blob.delete()
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(source).replace(target)
