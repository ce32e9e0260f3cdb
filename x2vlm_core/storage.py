"""One way to read and write local paths and ``gs://`` URIs.

Credentials come from Application Default Credentials (Workload Identity on GKE);
``STORAGE_EMULATOR_HOST`` points the real client at a local emulator in tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import IO, Any

from x2vlm_core.errors import StorageError

GCS_SCHEME = "gs://"
# Objects above the client's 8 MiB one-request limit go up as resumable uploads in chunks of this
# size (a multiple of 256 KiB): a dropped connection costs one chunk, not the whole file.
UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024
# How long one GCS request is retried, with exponential backoff, before the call gives up.
RETRY_DEADLINE_S = 120.0


class ChangedMeanwhile(StorageError):
    """A conditional write found the object created or replaced since it was read."""


class NotFound(StorageError):
    """The file or object (or its bucket) does not exist."""


def is_gcs(uri: str | os.PathLike) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def parse_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not is_gcs(uri):
        raise StorageError(f"{uri!r} is not a gs:// URI")
    bucket, _, blob = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket; write gs://BUCKET/PATH")
    return bucket, blob


def join(base: str | os.PathLike, *parts: str) -> str:
    if is_gcs(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


def stays_inside(relative: str) -> bool:
    """Whether ``relative`` (from a manifest or index) names something under its root: a relative
    POSIX path with no ``..`` part, so a file that lists paths cannot point the reader elsewhere."""
    path = PurePosixPath(relative)
    return bool(relative) and bool(path.parts) and not path.is_absolute() and ".." not in path.parts


@functools.lru_cache(maxsize=1)
def client() -> Any:
    try:
        from google.cloud import storage  # type: ignore[attr-defined]  # the namespace package has no stubs
    except ImportError:
        raise StorageError("gs:// needs google-cloud-storage: pip install 'x2vlm-platform[gcp]'") from None
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"), credentials=AnonymousCredentials()
        )
    try:
        return storage.Client()
    except Exception as exc:  # DefaultCredentialsError and friends
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(
            f"cannot create a GCS client ({first}); run `gcloud auth application-default login` "
            "or use Workload Identity"
        ) from None


def blob(uri: str) -> Any:
    bucket, name = parse_gcs(uri)
    return client().bucket(bucket).blob(name)


def _describe(uri: str, exc: Exception) -> StorageError:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.NotFound):
        return NotFound(f"{uri} does not exist (or its bucket does not); check the URI")
    if isinstance(exc, gexc.Forbidden):
        return StorageError(f"no permission for {uri}; grant the workload's service account access to the bucket")
    if isinstance(exc, gexc.PreconditionFailed):
        return ChangedMeanwhile(f"{uri} already exists (or changed meanwhile); it is never overwritten")
    if type(exc).__name__ == "DataCorruption":
        return StorageError(f"{uri} was corrupted in transit (checksum mismatch); try again")
    return StorageError(
        f"cannot reach {uri}: {type(exc).__name__}: {exc}".splitlines()[0] + "; check the network and the bucket name"
    )


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
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound(f"cannot read {uri}: it does not exist or is not a file; check the path") from None
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror}") from None


def read_range(uri: str | os.PathLike, offset: int, size: int) -> bytes:
    """``size`` bytes from ``offset`` on (fewer at the end of the file), one request on GCS."""
    if size <= 0:
        return b""
    if is_gcs(uri):
        return _gcs_call(str(uri), lambda: blob(str(uri)).download_as_bytes(start=offset, end=offset + size - 1))
    try:
        with open(uri, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound(f"cannot read {uri}: it does not exist or is not a file; check the path") from None
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror}") from None


def read_with_generation(uri: str | os.PathLike) -> tuple[bytes | None, int | None]:
    """An object's bytes (None if absent) and, on GCS, the generation they were read at (0 if absent),
    to replace it later only if nobody has meanwhile (``write_bytes(..., if_generation_match=)``)."""
    if not is_gcs(uri):
        return (read_bytes(uri) if Path(uri).is_file() else None), None

    def read() -> tuple[bytes | None, int]:
        bucket, name = parse_gcs(str(uri))
        found = client().bucket(bucket).get_blob(name, retry=retry_policy())
        if found is None:
            return None, 0
        return found.download_as_bytes(if_generation_match=found.generation), found.generation

    return _gcs_call(str(uri), read)


def write_bytes(uri: str | os.PathLike, data: bytes, if_generation_match: int | None = None) -> None:
    """Write a whole object; local files are written beside and renamed, so readers never see half of one.

    On GCS ``if_generation_match`` (0: only if absent) makes the write conditional; a lost race
    raises ChangedMeanwhile. Local writes are unconditional.
    """
    if is_gcs(uri):
        # One-shot uploads are atomic on GCS: the object appears complete or not at all. Writing the
        # same bytes again is harmless, so a failed attempt is retried.
        _gcs_call(
            str(uri),
            lambda: blob(str(uri)).upload_from_string(
                data, retry=retry_policy(), if_generation_match=if_generation_match
            ),
        )
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


def retry_policy() -> Any:
    """The client's default retry (backoff on 429/5xx/dropped connections), bounded by RETRY_DEADLINE_S.

    Uploads pass it explicitly: the client retries writes on its own only when they are
    conditional, and every retried upload here is idempotent (one content, one name).
    """
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(RETRY_DEADLINE_S)


def file_checksums(path: str | os.PathLike) -> dict[str, Any]:
    """Size and the base64 crc32c and md5 that GCS reports for an object of the same bytes."""
    import google_crc32c

    md5, crc = hashlib.md5(), google_crc32c.Checksum()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            crc.update(block)
            size += len(block)
    return {
        "size": size,
        "md5": base64.b64encode(md5.digest()).decode(),
        "crc32c": base64.b64encode(crc.digest()).decode(),
    }


def upload_file(path: str | os.PathLike, uri: str, if_generation_match: int | None = None) -> int | None:
    """Copy a local file to a path or gs:// object; returns the object's generation on GCS.

    ``if_generation_match=0`` creates the object only if nothing is there yet: GCS enforces it
    server-side, a local target is created exclusively. GCS uploads are retried with backoff,
    resumable above 8 MiB, and the object's crc32c and md5 are compared with the local file's;
    a mismatching object is deleted. When a retried create finds an identical object (the
    first attempt landed but its answer was lost), that object is accepted and None returned,
    as this call cannot tell it from one another writer created.
    """
    if not is_gcs(uri):
        _copy_local(Path(path), Path(uri), exclusive=if_generation_match == 0)
        return None
    local = file_checksums(path)
    target = blob(uri)
    target.chunk_size = UPLOAD_CHUNK_BYTES

    def upload() -> int | None:
        from google.api_core.exceptions import PreconditionFailed

        try:
            target.upload_from_filename(
                str(path), if_generation_match=if_generation_match, checksum="crc32c", retry=retry_policy()
            )
        except PreconditionFailed:
            existing = client().bucket(target.bucket.name).get_blob(target.name, retry=retry_policy())
            if if_generation_match == 0 and existing is not None and _same_content(existing, local):
                return None
            raise
        if not _same_content(target, local):
            target.delete(if_generation_match=target.generation, retry=retry_policy())
            raise StorageError(
                f"{uri}: the uploaded object's checksum (crc32c {target.crc32c}) differs from "
                f"{path} (crc32c {local['crc32c']}); it was deleted, upload again"
            )
        return target.generation

    return _gcs_call(uri, upload)


def _same_content(obj: Any, local: dict[str, Any]) -> bool:
    return (
        obj.size == local["size"]
        and obj.crc32c == local["crc32c"]
        and (obj.md5_hash is None or obj.md5_hash == local["md5"])
    )


def _copy_local(source: Path, target: Path, exclusive: bool) -> None:
    """Copy beside the target and rename into place; ``exclusive`` never replaces an existing file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        if exclusive:
            os.link(tmp, target)  # fails if the target exists, unlike a rename
        else:
            os.replace(tmp, target)
    except FileExistsError:
        raise StorageError(f"{target} already exists; it is never overwritten") from None
    except OSError as exc:
        raise StorageError(f"cannot copy {source} to {target}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def download_file(uri: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy a gs:// object or local file to ``path``, written beside and renamed.

    GCS downloads are retried and checked against the object's crc32c by the client.
    """
    path = Path(path)
    if not is_gcs(uri):
        _copy_local(Path(uri), path, exclusive=False)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        _gcs_call(
            str(uri), lambda: blob(str(uri)).download_to_filename(str(tmp), checksum="crc32c", retry=retry_policy())
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def delete(uri: str | os.PathLike, if_generation_match: int | None = None) -> None:
    """Remove an object or file; on GCS ``if_generation_match`` deletes only that exact version."""
    if is_gcs(uri):
        _gcs_call(
            str(uri), lambda: blob(str(uri)).delete(if_generation_match=if_generation_match, retry=retry_policy())
        )
    else:
        Path(uri).unlink(missing_ok=True)


def list_folder(prefix: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(files, folders)`` directly in a folder or gs:// prefix, each sorted; a missing one is empty.

    On GCS a folder is the common prefix of the objects below it: one listing, however many they are."""
    if is_gcs(prefix):
        bucket, name = parse_gcs(str(prefix))
        name = name.rstrip("/") + "/" if name else ""

        def listing() -> tuple[list[str], list[str]]:
            pages = client().list_blobs(bucket, prefix=name, delimiter="/", retry=retry_policy())
            files = [f"{GCS_SCHEME}{bucket}/{b.name}" for b in pages if b.name != name]
            return sorted(files), sorted(f"{GCS_SCHEME}{bucket}/{p.rstrip('/')}" for p in pages.prefixes)

        try:
            return _gcs_call(str(prefix), listing)
        except NotFound:  # the bucket itself is missing: nothing is there
            return [], []
    root = Path(prefix)
    if not root.is_dir():
        return [], []
    children = sorted(root.iterdir())
    return [str(p) for p in children if p.is_file()], [str(p) for p in children if p.is_dir()]


def is_folder(uri: str | os.PathLike) -> bool:
    """A local folder, or a gs:// prefix with at least one object below it."""
    if not is_gcs(uri):
        return Path(uri).is_dir()
    bucket, name = parse_gcs(str(uri))
    name = name.rstrip("/") + "/" if name else ""
    try:
        found = _gcs_call(str(uri), lambda: list(client().list_blobs(bucket, prefix=name, max_results=1)))
    except NotFound:
        return False
    return bool(found)


def list_uris(prefix: str | os.PathLike) -> list[str]:
    """Every file under a folder or gs:// prefix, sorted."""
    if is_gcs(prefix):
        bucket, name = parse_gcs(str(prefix))
        name = name.rstrip("/") + "/" if name else ""
        blobs = _gcs_call(str(prefix), lambda: list(client().list_blobs(bucket, prefix=name)))
        return sorted(f"{GCS_SCHEME}{bucket}/{b.name}" for b in blobs)
    root = Path(prefix)
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
