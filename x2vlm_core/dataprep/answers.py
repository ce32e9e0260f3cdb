"""<dataset>/answers.json: the answers the QA samples teach, per split, most frequent first."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator

from x2vlm_core.dataprep.outputs import ANSWERS_FILE, pretty_json


def answer_keys(sample: dict[str, Any]) -> Iterator[tuple[tuple[str, str, str], int]]:
    """The answers a QA sample teaches, as ``((dataset, split, answer), 1)``: VQA's best-scored answer(s), or the video QA answer."""
    meta = sample["meta"]
    if meta.get("kind") == "vqa" and meta["answer_scores"]:
        best = max(meta["answer_scores"].values())
        for answer, score in meta["answer_scores"].items():
            if score == best:
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
        ordered = {split: sorted(items, key=lambda a: (-a["count"], a["answer"])) for split, items in sorted(splits.items())}
        files[dataset] = (f"{dataset}/{ANSWERS_FILE}", pretty_json(ordered))
    return files
