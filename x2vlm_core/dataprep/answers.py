"""<dataset>/answers.json: the answers the QA samples teach, per split, most frequent first.

A VQA question counts once, for the answer most of its annotators gave (VQA's
``multiple_choice_answer``), as the official answer lists are built. Its soft scores saturate at
three annotators, so ranking by them would tie an answer given by three with one given by seven.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterator

from x2vlm_core.data.readers.vqa_v2 import normalize_answer
from x2vlm_core.dataprep.outputs import ANSWERS_FILE, pretty_json


def answer_keys(sample: dict[str, Any]) -> Iterator[tuple[tuple[str, str, str], int]]:
    """The answers a QA sample teaches, as ``((dataset, split, answer), 1)``: the answer(s) most of a VQA question's annotators gave, or the video QA answer."""
    meta = sample["meta"]
    if meta.get("kind") == "vqa" and meta.get("answers"):
        # The same normalisation as the answer_scores keys, so both name an answer alike.
        given = Counter(normalize_answer(answer) for answer in meta["answers"])
        most = max(given.values())
        for answer, count in sorted(given.items()):
            if count == most:
                yield (sample["dataset"], sample["split"], answer), 1
    elif meta.get("kind") == "video_qa":
        yield (sample["dataset"], sample["split"], meta["answer"]), 1


def answer_lists(answers: list[dict[str, Any]]) -> dict[str, tuple[str, bytes]]:
    """``dataset -> (relative path, bytes)`` of ``<dataset>/answers.json`` from ``{dataset, split, answer, count}`` entries."""
    by_dataset: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for entry in answers:
        by_dataset[entry["dataset"]][entry["split"]].append({"answer": entry["answer"], "count": entry["count"]})
    files = {}
    for dataset, splits in by_dataset.items():
        ordered = {
            split: sorted(items, key=lambda a: (-a["count"], a["answer"])) for split, items in sorted(splits.items())
        }
        files[dataset] = (f"{dataset}/{ANSWERS_FILE}", pretty_json(ordered))
    return files
