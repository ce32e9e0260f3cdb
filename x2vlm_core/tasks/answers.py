"""Answer vocabularies for question answering, and the answers a question teaches.

VQA ranks its answers from a fixed list at test time (the official list holds 3,128); video QA
classifies over one (MSRVTT-QA: 1,500). Both are the most frequent training answers, which
prepare-data counts into ``<dataset>/answers.json``; they are normalised here as the VQA
evaluation normalises predictions, so "Two" and "2" are one answer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from x2vlm_core import storage
from x2vlm_core.data.shard_location import follow_manifest
from x2vlm_core.errors import DataError
from x2vlm_core.evaluation.vqa_accuracy import normalize_answer

ANSWERS_FILE = "answers.json"


def answer_vocabulary(shards_root: str | Path, dataset: str, split: str, size: int) -> list[str]:
    """The ``size`` most frequent normalised answers of ``dataset``/``split``, most frequent first."""
    path = storage.join(follow_manifest(shards_root), dataset, ANSWERS_FILE)
    if not storage.exists(path):
        raise DataError(f"{path} does not exist; re-run prepare-data, which counts the answers of QA datasets")
    try:
        entries = json.loads(storage.read_bytes(path).decode("utf-8")).get(split)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise DataError(f"{path}: not an answers file ({{split: [{{answer, count}}]}}); re-run prepare-data") from None
    if not entries:
        raise DataError(f"{path} lists no answers for split {split!r}; is this a question answering dataset?")
    counts: Counter[str] = Counter()
    for entry in entries:
        answer = normalize_answer(str(entry["answer"]))
        if answer:
            counts[answer] += int(entry["count"])
    return [answer for answer, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]]


def sample_answers(meta: dict[str, Any]) -> list[str]:
    """The normalised answers of one question: VQA's human answers, or the one answer of video QA."""
    if "answers" in meta:
        return [normalize_answer(a) for a in meta["answers"]]
    if "answer" in meta:
        return [normalize_answer(meta["answer"])]
    return []


# A VQA answer's soft score by how many of the annotators gave it (VLMo's, from ViLT's VQA data).
SOFT_SCORES = (0.0, 0.3, 0.6, 0.9)
FULL_SCORE = 1.0


def answer_soft_scores(meta: dict[str, Any]) -> dict[str, float]:
    """Each distinct answer with its soft score: 0.3 per annotator who gave it, 1 from four on (VLMo's target)."""
    counts = Counter(a for a in sample_answers(meta) if a)
    return {answer: SOFT_SCORES[count] if count < len(SOFT_SCORES) else FULL_SCORE for answer, count in counts.items()}


def answer_weights(meta: dict[str, Any]) -> dict[str, float]:
    """Each distinct answer with the share of annotators who gave it (the official VQA training target)."""
    answers = [a for a in sample_answers(meta) if a]
    return {answer: count / len(answers) for answer, count in Counter(answers).items()}
