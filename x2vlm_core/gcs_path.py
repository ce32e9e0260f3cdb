"""A ``gs://`` object or prefix that behaves like the part of ``pathlib.Path`` the source readers use.

The readers were written against local paths (``images / name``, ``.is_file()``, ``.glob("*.tar")``,
``.open()``); with ``as_path`` they take a local path or a ``gs://`` URI alike, and read the bucket
through ``x2vlm_core.storage``, object by object, never copying it.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from x2vlm_core import storage


class GcsPath:
    """``gs://bucket/key``, its key normalised (``a/../b`` is ``b``) since GCS would take ``..`` literally."""

    def __init__(self, uri: str, *, known_file: bool = False) -> None:
        bucket, key = storage.parse_gcs(uri)
        # Rooted at the bucket: a key cannot climb out of it with "..".
        key = posixpath.normpath("/" + key).lstrip("/")
        self.bucket, self.key = bucket, "" if key == "." else key
        self._known_file = known_file  # listed as an object: is_file() needs no request

    def __str__(self) -> str:
        return f"{storage.GCS_SCHEME}{self.bucket}/{self.key}" if self.key else f"{storage.GCS_SCHEME}{self.bucket}"

    def __repr__(self) -> str:
        return f"GcsPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GcsPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: GcsPath) -> bool:
        return str(self) < str(other)

    def __truediv__(self, part: str | PurePosixPath) -> GcsPath:
        text = str(part)
        if storage.is_gcs(text):
            return GcsPath(text)
        # As pathlib: an absolute part starts again from the root, here the bucket's.
        base = f"{storage.GCS_SCHEME}{self.bucket}" if text.startswith("/") else str(self)
        return GcsPath(f"{base.rstrip('/')}/{text.lstrip('/')}")

    @property
    def _pure(self) -> PurePosixPath:
        return PurePosixPath(self.key)

    @property
    def name(self) -> str:
        return self._pure.name

    @property
    def stem(self) -> str:
        return self._pure.stem

    @property
    def suffix(self) -> str:
        return self._pure.suffix

    @property
    def parent(self) -> GcsPath:
        return GcsPath(f"{storage.GCS_SCHEME}{self.bucket}/{self._pure.parent}")

    def with_suffix(self, suffix: str) -> GcsPath:
        return GcsPath(f"{storage.GCS_SCHEME}{self.bucket}/{self._pure.with_suffix(suffix)}")

    def relative_to(self, other: GcsPath) -> PurePosixPath:
        if not isinstance(other, GcsPath) or other.bucket != self.bucket:
            raise ValueError(f"{self} is not under {other}")
        return self._pure.relative_to(other._pure)

    def is_file(self) -> bool:
        return self._known_file or (bool(self.key) and storage.exists(str(self)))

    def is_dir(self) -> bool:
        return storage.is_folder(str(self))

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def iterdir(self) -> Iterator[GcsPath]:
        files, folders = storage.list_folder(str(self))
        yield from sorted([GcsPath(uri, known_file=True) for uri in files] + [GcsPath(uri) for uri in folders])

    def glob(self, pattern: str) -> Iterator[GcsPath]:
        """The files directly in this folder whose name matches ``pattern`` (``*.tar``): one listing."""
        files, _ = storage.list_folder(str(self))
        for uri in files:
            if fnmatch.fnmatchcase(uri.rsplit("/", 1)[-1], pattern):
                yield GcsPath(uri, known_file=True)

    def rglob(self, pattern: str) -> Iterator[GcsPath]:
        """Every file below this folder whose name matches ``pattern``; folders are not objects on GCS."""
        for uri in storage.list_uris(str(self)):
            if fnmatch.fnmatchcase(uri.rsplit("/", 1)[-1], pattern):
                yield GcsPath(uri, known_file=True)

    def open(self, mode: str = "r", encoding: str | None = None, newline: str | None = None) -> IO[Any]:
        """Read, streamed: ``rb`` bytes, ``r`` text (UTF-8 unless ``encoding``)."""
        if mode not in ("r", "rb", "rt"):
            raise ValueError(f"GcsPath opens for reading only, not {mode!r}")
        handle = storage.open_uri(str(self))
        if mode == "rb":
            return handle
        return io.TextIOWrapper(handle, encoding=encoding or "utf-8", newline=newline)

    def read_bytes(self) -> bytes:
        return storage.read_bytes(str(self))


# What a source path is: a local path or a gs:// one, with the same interface.
AnyPath = Path | GcsPath


def relative_to(path: AnyPath, root: AnyPath) -> PurePosixPath:
    """Where ``path`` lies below ``root``, both local or both gs://; ValueError when it does not."""
    if isinstance(path, GcsPath) and isinstance(root, GcsPath):
        return path.relative_to(root)
    if isinstance(path, Path) and isinstance(root, Path):
        return PurePosixPath(path.relative_to(root).as_posix())
    raise ValueError(f"{path} is not under {root}")


def as_path(text: str | Path) -> AnyPath:
    """``text`` as a ``GcsPath`` when it is a gs:// URI, else as a local ``Path``."""
    return GcsPath(str(text)) if storage.is_gcs(text) else Path(text)
