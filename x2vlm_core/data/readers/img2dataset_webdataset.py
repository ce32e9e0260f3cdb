"""img2dataset webdataset output (Conceptual Captions 3M/12M, LAION, ...): ``NNNNN.tar`` shards of
``<key>.jpg`` + ``<key>.txt`` (caption) + ``<key>.json``; one ``image_text`` record per key.

Each tar is one part, read on its own worker. Records point at the image bytes inside the tar
(offset and size), so only captions travel through the job until the image step reads them.
Downloads that failed never reached a tar; img2dataset lists them in the parquet beside it.
"""

from __future__ import annotations

import json
import tarfile
from typing import Iterator

from x2vlm_core.data.images import input_reference
from x2vlm_core.data.readers.common import base_record, key_part, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath, as_path

KIND = "image_text"
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
FORMAT = SourceFormat((), ("shards",), default_split="train")


def parts(source: Source) -> list[str]:
    tars = sorted(str(path) for path in source.path("shards").glob("*.tar"))
    if not tars:
        raise DataError(
            f"{source.path('shards')}: no .tar shards; point 'shards' at img2dataset's output folder (output_format=webdataset)"
        )
    return tars


def read(source: Source, part: str | None = None) -> Iterator[dict]:
    for tar_path in [part] if part else parts(source):
        yield from _read_tar(source, as_path(tar_path))


def _read_tar(source: Source, path: AnyPath) -> Iterator[dict]:
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with path.open("rb") as handle, tarfile.open(fileobj=handle, mode="r:") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = member.name.rsplit("/", 1)[-1]
                key, dot, suffix = name.partition(".")
                if dot:
                    samples.setdefault(member.name[: len(member.name) - len(name)] + key, {})[suffix.lower()] = member
            texts = {key: _text(archive, members) for key, members in samples.items()}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable tar ({error}); re-download this shard or remove it") from None
    for key in sorted(samples):
        members = samples[key]
        image = next((members[s] for s in IMAGE_SUFFIXES if s in members), None)
        if image is None:
            reference = input_reference(path, missing=f"{key}.jpg")
        else:
            reference = input_reference(path, member=image.name, offset=image.offset_data, size=image.size)
        record = base_record(
            source,
            record_key("img2dataset", key_part(f"{source.path('shards').name}-{key}"), path),
            KIND,
            source.given_split,
            [reference],
        )
        record.update(image_id=key, captions=[texts[key]])
        yield record


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = archive.extractfile(member)
    assert file is not None  # None only for members that are not regular files, which are never collected
    return file.read()


def _text(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> str:
    """The caption: the .txt member, else the 'caption' of the .json member, else empty (rejected later)."""
    if "txt" in members:
        return _read(archive, members["txt"]).decode("utf-8", errors="replace").strip()
    if "json" in members:
        try:
            caption = json.loads(_read(archive, members["json"])).get("caption")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            caption = None
        if isinstance(caption, str):
            return caption.strip()
    return ""
