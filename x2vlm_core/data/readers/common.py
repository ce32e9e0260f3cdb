"""Helpers the format readers share: JSON loading, field access, record keys and caption texts, each failing with a DataError."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
from typing import IO, TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from x2vlm_core import storage
from x2vlm_core.data.images import input_file
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath, GcsPath

if TYPE_CHECKING:
    from x2vlm_core.data.sources import Source

_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# Reject reason: an annotation names an image outside the source's folders (see allow_images_outside).
OUTSIDE_SOURCE = "outside_source_folders"


def load_json(path: AnyPath) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}); re-download or regenerate the file"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-download or regenerate the file") from None


@contextlib.contextmanager
def open_text(path: AnyPath) -> Iterator[IO[str]]:
    """The file as UTF-8 text, line ends kept as written, un-gzipped when its name ends in .gz."""
    with path.open("rb") as raw:
        unpacked = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        yield io.TextIOWrapper(unpacked, encoding="utf-8", newline="")


def iter_json_lines(path: AnyPath) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path}: line {line_number} is not valid JSON ({error.msg}); fix or re-download the file"
                ) from None
            if not isinstance(value, dict):
                raise DataError(f"{path}: line {line_number} is a {type(value).__name__}, expected a JSON object")
            yield line_number, value


def field(obj: Any, name: str, path: AnyPath, where: str, kind: type | tuple[type, ...] = object) -> Any:
    """``obj[name]`` checked for presence and type; ``where`` says which entry (e.g. 'images[3]')."""
    if not isinstance(obj, Mapping):
        raise DataError(
            f"{path}: {where} is a {type(obj).__name__}, expected an object with '{name}'; is this the right file?"
        )
    if name not in obj:
        raise DataError(f"{path}: {where} has no '{name}' field; is this the right file for this format?")
    value = obj[name]
    # bool is an int subclass; a true/false where a number belongs is still malformed.
    bool_as_number = isinstance(value, bool) and (int in _as_tuple(kind) or float in _as_tuple(kind))
    if not isinstance(value, kind) or bool_as_number:
        raise DataError(f"{path}: {where}.{name} is {value!r}, expected {_type_names(kind)}; fix the file")
    return value


def field_list(obj: Any, name: str, path: AnyPath, where: str) -> list[Any]:
    return field(obj, name, path, where, list)


def bbox_field(obj: Any, name: str, path: AnyPath, where: str) -> list[float]:
    box = field_list(obj, name, path, where)
    if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise DataError(f"{path}: {where}.{name} is {box!r}, expected [x, y, width, height] numbers")
    return [float(v) for v in box]


def record_key(prefix: str, ident: int | str, path: AnyPath) -> str:
    """A webdataset-safe key: letters, digits, '_' and '-' only (a dot would split the sample)."""
    suffix = f"{ident:012d}" if isinstance(ident, int) else ident
    key = f"{prefix}-{suffix}"
    if not _KEY_CHARS.fullmatch(key):
        raise DataError(f"{path}: id {ident!r} gives key {key!r}, which may only hold letters, digits, '_' and '-'")
    return key


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def base_record(
    source: "Source", key: str, kind: str, split: str, image_paths: Sequence[str | AnyPath]
) -> dict[str, Any]:
    """The fields every record has, whatever its kind."""
    record = {
        "key": key,
        "dataset": source.dataset,
        "source": source.format,
        "kind": kind,
        "split": split,
        "image_paths": [str(path) for path in image_paths],
    }
    if not source.options.get("allow_images_outside") and not all(_inside(source, p) for p in image_paths):
        record["reader_reject"] = OUTSIDE_SOURCE
    return record


def _inside(source: "Source", image: str | AnyPath) -> bool:
    """Whether an image input lies, as written (``..`` resolved, links not followed), in a folder or file of ``source``."""
    target = _normalized(input_file(image))
    roots = (_normalized(root) for root in source.paths.values())
    return any(target == root or target.startswith(root.rstrip("/") + "/") for root in roots)


def _normalized(location: str) -> str:
    # GcsPath resolves ".." inside the bucket; os.path.normpath would also fold the "//" of gs://.
    return str(GcsPath(location)) if storage.is_gcs(location) else os.path.normpath(location)


def iter_json_lines_at(path: AnyPath) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """Like ``iter_json_lines``, also giving each line's byte offset and size, so a later step can re-read just that line."""
    offset = 0
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise DataError(
                    f"{path}: line {line_number} is not valid JSON ({error}); fix or re-download the file"
                ) from None
            if not isinstance(value, dict):
                raise DataError(f"{path}: line {line_number} is a {type(value).__name__}, expected a JSON object")
            yield line_number, start, len(line), value


def texts_of(value: Any, path: AnyPath, where: str) -> tuple[list[str], list[str] | None]:
    """Caption texts from a string, a list of strings, or ``{language: text}`` mapping(s) (X²-VLM/CCLM).

    Returns ``(texts, languages)``; ``languages`` is None unless the texts came from mappings.
    """
    values = value if isinstance(value, list) else [value]
    texts: list[str] = []
    languages: list[str] = []
    for item in values:
        if isinstance(item, str):
            texts.append(item.strip())
            languages.append("")
        elif isinstance(item, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in item.items()):
            for language, text in sorted(item.items()):
                texts.append(text.strip())
                languages.append(language)
        else:
            raise DataError(
                f"{path}: {where} is {item!r}; expected a caption string, a list of them, or a {{language: caption}} mapping"
            )
    return texts, (languages if any(languages) else None)


def key_part(text: str) -> str:
    """``text`` with every character a key may not hold replaced by '_' (file stems, video ids)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


EMPTY_CAPTION = "empty_caption"


def drop_empty_texts(record: dict[str, Any]) -> tuple[dict[str, Any], int, str | None]:
    """Remove empty captions, region phrases and referring sentences from a record.

    Returns ``(record, texts_dropped, reject_reason)``: the reason is ``empty_caption`` when the
    record has no text left to train on (or its question/statement is empty).
    """
    cleaned, dropped = dict(record), 0
    for name in ("captions", "sentences"):
        if name in cleaned:
            keep = [i for i, text in enumerate(cleaned[name]) if text.strip()]
            dropped += len(cleaned[name]) - len(keep)
            cleaned[name] = [cleaned[name][i] for i in keep]
            if name == "captions" and "caption_languages" in cleaned:
                cleaned["caption_languages"] = [cleaned["caption_languages"][i] for i in keep]
    if "regions" in cleaned:
        regions = [region for region in cleaned["regions"] if region["caption"].strip()]
        dropped += len(cleaned["regions"]) - len(regions)
        cleaned["regions"] = regions
    texts = len(cleaned.get("captions", [])) + len(cleaned.get("sentences", [])) + len(cleaned.get("regions", []))
    single = [cleaned[name] for name in ("question", "sentence", "source_text", "target_text") if name in cleaned]
    if any(not text.strip() for text in single) or (not single and texts == 0):
        return record, dropped, EMPTY_CAPTION
    return cleaned, dropped, None
