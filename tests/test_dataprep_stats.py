"""stats without Beam: histograms, stats.json from staged entries, and the read == written + rejected check."""

from __future__ import annotations

import pytest

from x2vlm_core.dataprep.stats import check_nothing_lost, job_stats, side_bucket, word_bucket


def test_buckets_have_sortable_labels_and_open_ends():
    assert [word_bucket(n) for n in (0, 4, 5, 39, 40, 400)] == ["00-04", "00-04", "05-09", "35-39", "40+", "40+"]
    assert [side_bucket(n) for n in (8, 64, 65, 1024, 1025)] == ["<=0064", "<=0064", "<=0128", "<=1024", ">1024"]


def _shard(dataset, split, by_source, **extra):
    return {
        "dataset": dataset,
        "split": split,
        "by_source": by_source,
        "texts_dropped_empty": 0,
        "caption_length_words": {},
        "image_max_side": {},
        **extra,
    }


def _reject(dataset, source, split, reason):
    return {"dataset": dataset, "source": source, "split": split, "reason": reason}


def test_stats_add_up_shards_and_rejects_per_dataset_source_and_split():
    read = [
        {"dataset": "d", "source": "coco", "split": "train", "count": 5},
        {"dataset": "d", "source": "tsv", "split": "train", "count": 2},
    ]
    shards = [
        _shard("d", "train", {"coco": 2, "tsv": 1}, caption_length_words={"00-04": 3}, texts_dropped_empty=2),
        _shard("d", "train", {"coco": 1}, caption_length_words={"00-04": 1, "05-09": 1}, image_max_side={"<=0064": 1}),
    ]
    rejects = [
        _reject("d", "coco", "train", "duplicate_of:abc"),
        _reject("d", "coco", "train", "duplicate_of:xyz"),
        _reject("d", "tsv", "train", "missing_file"),
    ]
    stats = job_stats(read, shards, rejects)
    assert stats["records"] == {"read": 7, "written": 4, "rejected": 3}
    assert stats["written"] == {"d": {"coco": {"train": 3}, "tsv": {"train": 1}}}
    assert stats["rejected"] == {"d": {"coco": {"train": 2}, "tsv": {"train": 1}}}
    assert stats["rejects_by_reason"] == {"duplicate_of": 2, "missing_file": 1}
    assert stats["caption_length_words"] == {"d": {"00-04": 4, "05-09": 1}}
    assert stats["image_max_side"] == {"d": {"<=0064": 1}} and stats["texts_dropped_empty"] == {"d": 2}
    check_nothing_lost(stats)


def test_a_record_neither_written_nor_rejected_fails_the_job():
    read = [{"dataset": "d", "source": "coco", "split": "val", "count": 3}]
    stats = job_stats(read, [_shard("d", "val", {"coco": 1})], [_reject("d", "coco", "val", "undecodable")])
    with pytest.raises(RuntimeError, match="lost records in d/coco/val: read 3, wrote 1, rejected 1"):
        check_nothing_lost(stats)
    # Written but never read is as wrong as read but never written.
    with pytest.raises(RuntimeError, match="d/tsv/val: read 0, wrote 1"):
        check_nothing_lost(job_stats([], [_shard("d", "val", {"tsv": 1})], []))
