"""answers without Beam: the answers a QA sample teaches, and the per-dataset answer lists."""

from __future__ import annotations

import json
from collections import Counter

from x2vlm_core.dataprep.answers import answer_keys, answer_lists


def _sample(meta, split="train"):
    return {"dataset": "vqa", "split": split, "meta": meta}


def test_vqa_teaches_the_answer_most_annotators_gave_and_video_qa_its_answer():
    # red 4, blue 3: both score 1.0, but red was given more often.
    vqa = _sample(
        {"kind": "vqa", "answers": ["Red", "red", "red ", "red", "blue", "blue", "blue", "green", "pink", "grey"]}
    )
    assert list(answer_keys(vqa)) == [(("vqa", "train", "red"), 1)]
    tie = _sample({"kind": "vqa", "answers": ["red"] * 5 + ["blue"] * 5})
    assert sorted(answer_keys(tie)) == [(("vqa", "train", "blue"), 1), (("vqa", "train", "red"), 1)]
    assert list(answer_keys(_sample({"kind": "vqa", "answers": []}))) == []  # test-dev: questions only
    assert list(answer_keys(_sample({"kind": "video_qa", "answer": "dog"}, "test"))) == [(("vqa", "test", "dog"), 1)]
    assert list(answer_keys(_sample({"kind": "image_text", "captions": ["a cat"]}))) == []


def test_answer_lists_sort_by_count_then_answer_per_split():
    entries = [{"dataset": "vqa", "split": "train", "answer": a, "count": c} for a, c in (("b", 2), ("a", 2), ("c", 5))]
    entries.append({"dataset": "video_qa", "split": "test", "answer": "dog", "count": 1})
    files = answer_lists(entries)
    path, data = files["vqa"]
    assert path == "vqa/answers.json" and data.endswith(b"\n")
    assert json.loads(data) == {
        "train": [{"answer": "c", "count": 5}, {"answer": "a", "count": 2}, {"answer": "b", "count": 2}]
    }
    assert json.loads(files["video_qa"][1]) == {"test": [{"answer": "dog", "count": 1}]}


def test_majority_answer_baseline_of_a_vqa_split_where_every_question_has_a_clear_majority(tmp_path):
    """Seven annotators say "yes", three "no": always answering "yes" scores 1.0 (ranking by soft scores chose "no": 0.9)."""
    from x2vlm_core.data.readers import read_source
    from x2vlm_core.data.sources import load_sources
    from x2vlm_core.evaluation.vqa_accuracy import vqa_accuracy
    from x2vlm_core.tasks.answers import answer_vocabulary

    header = {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": "val2014"}
    questions = [{"image_id": 1, "question": f"is there a shape {i}?", "question_id": 1000 + i} for i in range(10)]
    annotations = [
        {
            "question_id": 1000 + i,
            "image_id": 1,
            "question_type": "is there",
            "answer_type": "yes/no",
            "multiple_choice_answer": "yes",
            "answers": [
                {"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                for k, a in enumerate(["yes"] * 7 + ["no"] * 3)
            ],
        }
        for i in range(10)
    ]
    (tmp_path / "q.json").write_text(json.dumps({**header, "task_type": "Open-Ended", "questions": questions}))
    (tmp_path / "a.json").write_text(json.dumps({**header, "annotations": annotations}))
    (tmp_path / "val2014").mkdir()
    source = load_sources(
        [
            {
                "format": "vqa_v2",
                "dataset": "vqa",
                "split": "val",
                "questions": str(tmp_path / "q.json"),
                "annotations": str(tmp_path / "a.json"),
                "images": str(tmp_path / "val2014"),
            }
        ]
    )[0]
    samples = [{"dataset": r["dataset"], "split": r["split"], "meta": r} for r in read_source(source)]
    counts = Counter()
    for sample in samples:
        counts.update(dict(answer_keys(sample)))
    entries = [{"dataset": d, "split": s, "answer": a, "count": n} for (d, s, a), n in counts.items()]
    relative, data = answer_lists(entries)["vqa"]
    (tmp_path / "shards" / "vqa").mkdir(parents=True)
    (tmp_path / "shards" / relative).write_bytes(data)
    majority = answer_vocabulary(tmp_path / "shards", "vqa", "val", 10)[0]
    baseline = sum(vqa_accuracy(majority, s["meta"]["answers"]) for s in samples) / len(samples)
    assert majority == "yes" and baseline == 1.0
