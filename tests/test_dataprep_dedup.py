"""dedup without Beam: the content key, and which samples of one key survive."""

from __future__ import annotations

import random

from x2vlm_core.dataprep.dedup import content_sha256, drop_duplicates
from x2vlm_core.dataprep.outcomes import REJECTED, SAMPLES


def _sample(key, paths, source="coco_captions"):
    return {"key": key, "dataset": "d", "source": source, "split": "train", "image_paths": paths}


def test_the_key_covers_every_picture_and_their_boundaries():
    assert content_sha256([b"ab", b"c"], {}) != content_sha256([b"a", b"bc"], {})
    assert content_sha256([b"ab"], {"captions": ["x"]}) == content_sha256([b"ab"], {"captions": ["y"]})


def test_text_only_records_are_keyed_by_their_texts_not_by_where_they_came_from():
    pair = {"kind": "parallel_text", "source_text": "a red circle", "target_text": "kalo mine"}
    here = {**pair, "key": "1", "dataset": "d", "source": "a.tsv", "split": "train", "image_paths": [], "score": 1.2}
    there = {**pair, "key": "2", "dataset": "d", "source": "b.tsv", "split": "val", "image_paths": [], "score": 1.4}
    assert content_sha256([], here) == content_sha256([], there)
    assert content_sha256([], here) != content_sha256([], {**here, "target_text": "sati vozeru"})


def test_the_file_with_the_smallest_key_wins_whatever_the_order():
    samples = [
        _sample("b-question", ["/img/1.jpg"]),
        _sample("a-question", ["/img/1.jpg"]),
        _sample("c", ["/img/2.jpg"]),
        _sample("0", ["/img/3.jpg"]),
    ]
    for seed in range(5):
        random.Random(seed).shuffle(samples)
        outcomes = sorted((tag, s["key"], s.get("reason")) for tag, s in drop_duplicates(samples))
        # Several records of one file are not duplicates of each other; other files are.
        assert outcomes == [
            (REJECTED, "a-question", "duplicate_of:0"),
            (REJECTED, "b-question", "duplicate_of:0"),
            (REJECTED, "c", "duplicate_of:0"),
            (SAMPLES, "0", None),
        ]


def test_text_only_duplicates_keep_one_record():
    outcomes = drop_duplicates([_sample("7", []), _sample("3", []), _sample("5", [])])
    assert sorted((tag, s["key"], s.get("reason")) for tag, s in outcomes) == [
        (REJECTED, "5", "duplicate_of:3"),
        (REJECTED, "7", "duplicate_of:3"),
        (SAMPLES, "3", None),
    ]
