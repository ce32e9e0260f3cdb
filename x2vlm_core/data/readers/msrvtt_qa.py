"""MSRVTT-QA (``train_qa.json`` / ``val_qa.json`` / ``test_qa.json``: a JSON list of {id, video_id (int),
question, answer}; or ClipBERT's json-lines with ``video_id`` like ``video7010``).

One ``video_qa`` record per question; the split is the source entry's.
"""

from __future__ import annotations

from typing import Any, Iterator

from x2vlm_core.data.readers.common import base_record, field, iter_json_lines, load_json, record_key
from x2vlm_core.data.sources import SAFE_NAME, Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

KIND = "video_qa"
FORMAT = SourceFormat(("annotations",), ("videos",), default_split="train", options={"video_extension": "mp4"})


def _entries(path: AnyPath) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as handle:
        first = handle.read(64).lstrip()
    if first.startswith(b"["):
        entries = load_json(path)
        if not isinstance(entries, list):
            raise DataError(
                f"{path}: expected a JSON list of questions, got {type(entries).__name__}; is this an MSRVTT-QA file?"
            )
        yield from ((f"[{i}]", entry) for i, entry in enumerate(entries))
    else:
        yield from ((f"line {n}", entry) for n, entry in iter_json_lines(path))


def read(source: Source) -> Iterator[dict]:
    path, videos, extension = source.path("annotations"), source.path("videos"), source.options["video_extension"]
    for position, (where, entry) in enumerate(_entries(path)):
        raw_video = field(entry, "video_id", path, where, (int, str))
        video_id = f"video{raw_video}" if isinstance(raw_video, int) else raw_video
        if not SAFE_NAME.fullmatch(video_id):
            raise DataError(f"{path}: {where}.video_id is {raw_video!r}; expected a number or a name like video7010")
        question_id = field(entry, "id", path, where, int) if "id" in entry else position
        record = base_record(
            source,
            record_key("msrvttqa", f"{source.given_split}-{question_id:09d}", path),
            KIND,
            source.given_split,
            [videos / f"{video_id}.{extension}"],
        )
        record.update(
            video_id=video_id,
            question_id=question_id,
            question=field(entry, "question", path, where, str).strip(),
            answer=field(entry, "answer", path, where, str).strip(),
        )
        if isinstance(entry.get("answer_type"), str):
            record["answer_type"] = entry["answer_type"]
        yield record
