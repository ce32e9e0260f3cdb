"""One way to read and write local paths and ``gs://`` URIs.

Credentials come from Application Default Credentials (Workload Identity on GKE);
``STORAGE_EMULATOR_HOST`` points the real client at a local emulator in tests.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import IO, Any

from x2vlm_core.errors import StorageError

GCS_SCHEME = "gs://"


def is_gcs(uri: str | os.PathLike) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def parse_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not is_gcs(uri):
        raise StorageError(f"{uri!r} is not a gs:// URI")
    bucket, _, blob = uri[len(GCS_SCHEME):].partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket; write gs://BUCKET/PATH")
    return bucket, blob


def join(base: str | os.PathLike, *parts: str) -> str:
    if is_gcs(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


@functools.lru_cache(maxsize=1)
def client() -> Any:
    try:
        from google.cloud import storage
    except ImportError:
        raise StorageError("gs:// needs google-cloud-storage: pip install 'x2vlm-platform[gcp]'") from None
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"),
                              credentials=AnonymousCredentials())
    try:
        return storage.Client()
    except Exception as exc:  # DefaultCredentialsError and friends
        raise StorageError(f"cannot create a GCS client ({exc}); run `gcloud auth application-default login` "
                           "or use Workload Identity").splitlines()[0] from None


def blob(uri: str) -> Any:
    bucket, name = parse_gcs(uri)
    return client().bucket(bucket).blob(name)


def _describe(uri: str, exc: Exception) -> StorageError:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.NotFound):
        return StorageError(f"{uri} does not exist (or its bucket does not); check the URI")
    if isinstance(exc, gexc.Forbidden):
        return StorageError(f"no permission for {uri}; grant the workload's service account access to the bucket")
    return StorageError(f"cannot reach {uri}: {type(exc).__name__}: {exc}".splitlines()[0]
                        + "; check the network and the bucket name")


def _gcs_call(uri: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StorageError:
        raise
    except Exception as exc:
        raise _describe(uri, exc) from None


def exists(uri: str | os.PathLike) -> bool:
    if is_gcs(uri):
        return bool(_gcs_call(str(uri), lambda: blob(str(uri)).exists()))
    return Path(uri).exists()


def read_bytes(uri: str | os.PathLike) -> bytes:
    if is_gcs(uri):
        return _gcs_call(str(uri), lambda: blob(str(uri)).download_as_bytes())
    try:
        return Path(uri).read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror}") from None


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Write a whole object; local files are written beside and renamed, so readers never see half of one."""
    if is_gcs(uri):
        # One-shot uploads are atomic on GCS: the object appears complete or not at all.
        _gcs_call(str(uri), lambda: blob(str(uri)).upload_from_string(data))
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def open_uri(uri: str | os.PathLike, mode: str = "rb") -> IO:
    """A file object for reading (``rb``) a local path or gs:// object, streamed, not loaded whole."""
    if mode != "rb":
        raise ValueError("open_uri reads only; write with write_bytes or upload_file")
    if is_gcs(uri):
        return _gcs_call(str(uri), lambda: blob(str(uri)).open("rb"))
    try:
        return open(uri, "rb")
    except OSError as exc:
        raise StorageError(f"cannot open {uri}: {exc.strerror}") from None


def upload_file(path: str | os.PathLike, uri: str) -> None:
    if is_gcs(uri):
        _gcs_call(uri, lambda: blob(uri).upload_from_filename(str(path)))
    else:
        write_bytes(uri, Path(path).read_bytes())


def list_uris(prefix: str | os.PathLike) -> list[str]:
    """Every file under a folder or gs:// prefix, sorted."""
    if is_gcs(prefix):
        bucket, name = parse_gcs(str(prefix))
        name = name.rstrip("/") + "/" if name else ""
        blobs = _gcs_call(str(prefix), lambda: list(client().list_blobs(bucket, prefix=name)))
        return sorted(f"{GCS_SCHEME}{bucket}/{b.name}" for b in blobs)
    root = Path(prefix)
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
