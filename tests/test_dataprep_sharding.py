"""sharding without Beam: shard numbers from sorted keys, routing, writing one shard, removing stale shards."""

from __future__ import annotations

import hashlib

import pytest

from x2vlm_core.data.shards import iter_shard_samples
from x2vlm_core.dataprep.sharding import assign_shards, route_to_shard, write_one_shard
from x2vlm_core.errors import DataError


def test_keys_fill_shards_in_sorted_order_whatever_the_arrival_order():
    shards = dict(assign_shards(("d", "train"), ["e", "a", "d", "b", "c"], shard_size=2))
    assert shards == {
        ("d", "train", "a"): 0,
        ("d", "train", "b"): 0,
        ("d", "train", "c"): 1,
        ("d", "train", "d"): 1,
        ("d", "train", "e"): 2,
    }


def test_a_key_seen_twice_in_one_split_names_the_fix():
    with pytest.raises(DataError, match="two records have the key 'b'.*different 'dataset' names"):
        list(assign_shards(("d", "train"), ["a", "b", "b"], shard_size=8))


def test_a_sample_goes_to_its_shard_and_a_deduplicated_one_nowhere():
    sample = {"key": "a"}
    assert list(route_to_shard(("d", "val", "a"), {"shard": [3], "sample": [sample]})) == [(("d", "val", 3), sample)]
    assert list(route_to_shard(("d", "val", "a"), {"shard": [], "sample": [sample]})) == []


def _sample(key, source, caption, size):
    return {
        "key": key,
        "source": source,
        "texts_dropped": 1 if key == "b" else 0,
        "original_sizes": [size],
        "meta": {"key": key, "kind": "image_text", "captions": [caption], "width": 8, "height": 8},
        "images": [key.encode() * 10],
    }


def test_one_shard_is_written_in_key_order_with_its_index_entry_and_statistics(tmp_path):
    samples = [_sample("b", "tsv", "one two three four five six", (300, 200)), _sample("a", "coco", "a cat", (64, 64))]
    entry = write_one_shard(("d", "train", 1), samples, str(tmp_path))
    path = tmp_path / "d" / "train-00001.tar"
    assert entry["path"] == "d/train-00001.tar" and entry["count"] == 2
    assert entry["bytes"] == path.stat().st_size and entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [s["key"] for s in iter_shard_samples([path])] == ["a", "b"]
    assert entry["by_source"] == {"coco": 1, "tsv": 1} and entry["texts_dropped_empty"] == 1
    assert entry["caption_length_words"] == {"00-04": 1, "05-09": 1}
    assert entry["image_max_side"] == {"<=0064": 1, "<=0512": 1}
