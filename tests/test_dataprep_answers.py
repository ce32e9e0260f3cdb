"""answers without Beam: the answers a QA sample teaches, and the per-dataset answer lists."""

from __future__ import annotations

import json

from x2vlm_core.dataprep.answers import answer_keys, answer_lists


def _sample(meta, split="train"):
    return {"dataset": "vqa", "split": split, "meta": meta}


def test_vqa_teaches_every_best_scored_answer_and_video_qa_its_answer():
    vqa = _sample({"kind": "vqa", "answer_scores": {"red": 1.0, "blue": 1.0, "green": 0.3}})
    assert sorted(answer_keys(vqa)) == [(("vqa", "train", "blue"), 1), (("vqa", "train", "red"), 1)]
    assert list(answer_keys(_sample({"kind": "vqa", "answer_scores": {}}))) == []
    assert list(answer_keys(_sample({"kind": "video_qa", "answer": "dog"}, "test"))) == [(("vqa", "test", "dog"), 1)]
    assert list(answer_keys(_sample({"kind": "image_text", "captions": ["a cat"]}))) == []


def test_answer_lists_sort_by_count_then_answer_per_split():
    entries = [{"dataset": "vqa", "split": "train", "answer": a, "count": c} for a, c in (("b", 2), ("a", 2), ("c", 5))]
    entries.append({"dataset": "video_qa", "split": "test", "answer": "dog", "count": 1})
    files = answer_lists(entries)
    path, data = files["vqa"]
    assert path == "vqa/answers.json" and data.endswith(b"\n")
    assert json.loads(data) == {"train": [{"answer": "c", "count": 5}, {"answer": "a", "count": 2}, {"answer": "b", "count": 2}]}
    assert json.loads(files["video_qa"][1]) == {"test": [{"answer": "dog", "count": 1}]}
