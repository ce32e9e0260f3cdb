"""xGQA / GQA questions (IGLUE ``xGQA/annotations/{few_shot,zero_shot}/{language}/*.json``, GQA's own files).

Two layouts, told apart by the top level:

- GQA's: ``{question_id: {"imageId", "question", "answer", "types"?: {"structural": ...}, ...}}``
  (the xGQA test sets and few-shot train sets);
- the LXMERT/VOLTA list IGLUE trains on: ``[{"img_id", "sent", "question_id", "label": {answer: score}}]``.

One ``vqa`` record per question: ``image_id``, ``question_id`` (both strings, as GQA writes them),
``question``, ``answers``, ``answer_scores``, ``answer_type`` (GQA's structural type, or ""),
``language``; the image is ``images/{image_id}.jpg``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Iterator

from x2vlm_core.data.readers.common import base_record, field, key_part, load_json, record_key
from x2vlm_core.data.readers.languages import AUTO, language_of
from x2vlm_core.data.readers.vqa_v2 import normalize_answer
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

KIND = "vqa"
FORMAT = SourceFormat(("annotations",), ("images",), default_split="test", options={"language": AUTO})


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    language = language_of(source.options["language"], path)
    data = load_json(path)
    entries: Iterator[tuple[str | None, Any, str, _Fields]]
    if isinstance(data, dict):
        entries = ((str(qid), entry, f"[{qid!r}]", _gqa_fields) for qid, entry in data.items())
    elif isinstance(data, list):
        entries = ((None, entry, f"[{i}]", _lxmert_fields) for i, entry in enumerate(data))
    else:
        raise DataError(
            f"{path}: the top level is a {type(data).__name__}; expected GQA's {{question_id: question}} "
            "or a list of {img_id, sent, label} questions"
        )
    for question_id, entry, where, fields in entries:
        image_id, question_id, question, scores, answer_type = fields(entry, question_id, path, where)
        record = base_record(
            source,
            record_key(f"xgqa-{language}-{source.given_split}", key_part(question_id), path),
            KIND,
            source.given_split,
            [source.path("images") / f"{image_id}.jpg"],
        )
        record.update(
            image_id=image_id,
            question_id=question_id,
            question=question.strip(),
            answers=list(scores),
            answer_scores=scores,
            answer_type=answer_type,
            language=language,
        )
        yield record


# (entry, its question id or None, file, where) -> image id, question id, question, answer scores, answer type
_Fields = Callable[[Any, Any, AnyPath, str], tuple[str, str, str, dict[str, float], str]]


def _gqa_fields(entry: Any, question_id: str, path: AnyPath, where: str) -> tuple[str, str, str, dict[str, float], str]:
    answer = normalize_answer(field(entry, "answer", path, where, str))
    types = entry.get("types") if isinstance(entry.get("types"), dict) else {}
    return (
        str(field(entry, "imageId", path, where, (str, int))),
        question_id,
        field(entry, "question", path, where, str),
        {answer: 1.0},
        str(types.get("structural", "")),
    )


def _lxmert_fields(entry: Any, _: None, path: AnyPath, where: str) -> tuple[str, str, str, dict[str, float], str]:
    label = field(entry, "label", path, where, dict)
    scores = {}
    for answer, score in label.items():
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise DataError(f"{path}: {where}.label[{answer!r}] is {score!r}, expected a score between 0 and 1")
        scores[normalize_answer(answer)] = float(score)
    return (
        str(field(entry, "img_id", path, where, (str, int))),
        str(field(entry, "question_id", path, where, (str, int))),
        field(entry, "sent", path, where, str),
        scores,
        "",
    )
