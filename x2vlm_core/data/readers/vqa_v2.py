"""VQA v2 questions + annotations: one ``vqa`` record per question, with soft answer scores.

test-dev and test publish questions only: without ``annotations`` the records carry no answers
(evaluation then writes the EvalAI results file instead of scoring).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, field_list, load_json, record_key
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "vqa"
FORMAT = SourceFormat(("questions", "annotations"), ("images",), default_split="train", optional=("annotations",))


def normalize_answer(answer: str) -> str:
    return answer.strip().lower()


def answer_scores(answers: list[str]) -> dict[str, float]:
    """The VQA rule: an answer given by 3 or more of the 10 annotators scores 1, fewer score count/3."""
    counts = Counter(normalize_answer(answer) for answer in answers)
    return {answer: min(1.0, count / 3) for answer, count in sorted(counts.items())}


def read(source: Source) -> Iterator[dict]:
    questions_path = source.path("questions")
    questions_file = load_json(questions_path)
    # Image files are named after the subtype: COCO_train2014_000000000009.jpg; test-dev's images are test2015's.
    subtype = field(questions_file, "data_subtype", questions_path, "the top level", str).replace("test-dev", "test")
    questions = field_list(questions_file, "questions", questions_path, "the top level")

    annotated = "annotations" in source.paths
    annotations_path = source.path("annotations") if annotated else questions_path
    annotations = {}
    if annotated:
        for i, annotation in enumerate(
            field_list(load_json(annotations_path), "annotations", annotations_path, "the top level")
        ):
            annotations[field(annotation, "question_id", annotations_path, f"annotations[{i}]", int)] = (i, annotation)

    for i, question in enumerate(questions):
        where = f"questions[{i}]"
        question_id = field(question, "question_id", questions_path, where, int)
        image_id = field(question, "image_id", questions_path, where, int)
        image_path = source.path("images") / f"COCO_{subtype}_{image_id:012d}.jpg"
        record = base_record(
            source, record_key("vqa", question_id, questions_path), KIND, source.given_split, [image_path]
        )
        record.update(
            image_id=image_id,
            question_id=question_id,
            question=field(question, "question", questions_path, where, str).strip(),
        )
        if not annotated:
            record.update(answers=[], answer_scores={})
            yield record
            continue
        if question_id not in annotations:
            raise DataError(
                f"{annotations_path}: no annotation for question_id {question_id} of {questions_path}; pair the questions file with its own annotations file"
            )
        j, annotation = annotations[question_id]
        answers = [
            field(answer, "answer", annotations_path, f"annotations[{j}].answers[{k}]", str)
            for k, answer in enumerate(field_list(annotation, "answers", annotations_path, f"annotations[{j}]"))
        ]
        record.update(
            answers=answers,
            answer_scores=answer_scores(answers),
            answer_type=field(annotation, "answer_type", annotations_path, f"annotations[{j}]", str),
        )
        yield record
