"""Reading a published release: find it, download it, check it against its manifest, load the model.

A release folder (local or ``gs://``) is complete once its ``manifest.json`` exists, because
publishing writes that file last; a folder without one is refused. ``<model>/LATEST`` names
the newest complete version of a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from x2vlm_core import storage
from x2vlm_core.errors import ReleaseError, StorageError

MANIFEST = "manifest.json"
LATEST = "LATEST"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A model name or version: one path segment. Always fullmatch: "$" would also match before a final newline.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_release(uri: str | os.PathLike) -> str:
    """The release folder ``uri`` names: itself when it holds a manifest, else the version its LATEST names."""
    uri = str(uri).rstrip("/")
    if storage.exists(storage.join(uri, MANIFEST)):
        return uri
    pointer = storage.join(uri, LATEST)
    if storage.exists(pointer):
        version = storage.read_bytes(pointer).decode(errors="replace").removesuffix("\n")
        release = storage.join(uri, version)
        if NAME.fullmatch(version) and storage.exists(storage.join(release, MANIFEST)):
            return release
        raise ReleaseError(
            f"{pointer} names version {version[:130]!r}, which is not a version with a "
            f"{MANIFEST}; fetch a version folder that has one"
        )
    raise ReleaseError(
        f"{uri} has no {MANIFEST}: it is not a complete release (its publish failed or is "
        "still running); fetch a version folder that has one, or the model folder with LATEST"
    )


def read_manifest(release: str | os.PathLike) -> dict[str, Any]:
    """The release's manifest, checked for shape: every file a relative path with a size and a sha256."""
    where = storage.join(str(release), MANIFEST)
    try:
        manifest = json.loads(storage.read_bytes(where))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{where} is not valid JSON ({exc}); the release is damaged, re-publish it") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files:
        raise ReleaseError(f"{where} lists no files; the release is damaged, re-publish it")
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        if (
            not isinstance(path, str)
            or not storage.stays_inside(path)
            or path == MANIFEST
            or not isinstance(entry.get("size"), int)
            or not _SHA256.match(str(entry.get("sha256")))
        ):
            raise ReleaseError(f"{where} has an invalid file entry {entry!r}; the release is damaged, re-publish it")
    return manifest


def _check_file(path: Path, entry: dict[str, Any], source: str) -> None:
    if not path.is_file():
        raise ReleaseError(f"{source} is missing; the release is incomplete")
    size = path.stat().st_size
    if size != entry["size"]:
        raise ReleaseError(f"{source} has {size} bytes but the manifest says {entry['size']}; the release is corrupt")
    # No part of either hash in the message: it would tell a reader of logs about a file they cannot read.
    if sha256_file(path) != entry["sha256"]:
        raise ReleaseError(
            f"{source} does not have the sha256 the manifest lists; the release is corrupt, do not use it"
        )


def _refuse_links(root: Path, relative: str) -> None:
    """A local release holds plain files: a link (file or folder) could make it read anything the user can."""
    path = root
    for part in relative.split("/"):
        path = path / part
        if path.is_symlink():
            raise ReleaseError(f"{path} is a symlink; a release holds plain files only, so it is not used")


def verify_release(release_dir: str | Path) -> dict[str, Any]:
    """Check every file of a local release against its manifest; returns the manifest."""
    release_dir = Path(release_dir)
    if not (release_dir / MANIFEST).is_file():
        raise ReleaseError(f"{release_dir} has no {MANIFEST}: it is not a complete release")
    manifest = read_manifest(release_dir)
    for entry in manifest["files"]:
        _refuse_links(release_dir, entry["path"])
        _check_file(release_dir / entry["path"], entry, str(release_dir / entry["path"]))
    return manifest


def fetch_release(uri: str | os.PathLike, output: str | Path) -> Path:
    """Download a release (local or gs://) into the new or empty folder ``output``, every file
    checked against the manifest; a failed fetch leaves ``output`` as it was."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ReleaseError(f"{output} already exists and is not an empty folder; choose a new --output")
    release = resolve_release(uri)
    manifest = read_manifest(release)
    staging = output.with_name(f".{output.name}.fetching-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for entry in manifest["files"]:
            source = storage.join(release, entry["path"])
            target = staging / entry["path"]
            if not storage.is_gcs(release):
                _refuse_links(Path(release), entry["path"])
            try:
                storage.download_file(source, target)
            except StorageError as exc:
                raise ReleaseError(f"fetching {release} failed: {exc}") from None
            _check_file(target, entry, source)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if output.exists():
            output.rmdir()
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def load_release(release_dir: str | Path):
    """The model of a local release folder (whole or sharded weights), rebuilt from its config.yaml
    with ``create_model``. It does not re-check checksums: ``fetch_release`` and ``verify_release`` do."""
    from x2vlm_core.release.model_folder import load_model_dir

    return load_model_dir(release_dir).eval()
