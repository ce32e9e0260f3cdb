"""index without Beam: index.json lists the written shards in order, with counts and the job settings."""

from __future__ import annotations

from x2vlm_core.dataprep.index import build_index
from x2vlm_core.dataprep.outputs import CREATED_BY


def _entry(dataset, split, shard, count):
    return {
        "dataset": dataset,
        "split": split,
        "shard": shard,
        "path": f"{dataset}/{split}-{shard:05d}.tar",
        "count": count,
        "bytes": 10 * count,
        "sha256": f"h{shard}",
        "by_source": {"x": count},
    }


def test_shards_are_listed_in_order_whatever_order_they_arrive_in():
    entries = [_entry("b", "train", 1, 2), _entry("b", "train", 0, 4), _entry("a", "val", 0, 1)]
    index = build_index(entries, {"shard_size": 4, "max_image_side": 64, "num_frames": 3})
    assert index == {
        "datasets": {
            "a": {
                "val": {"count": 1, "shards": [{"path": "a/val-00000.tar", "count": 1, "bytes": 10, "sha256": "h0"}]}
            },
            "b": {
                "train": {
                    "count": 6,
                    "shards": [
                        {"path": "b/train-00000.tar", "count": 4, "bytes": 40, "sha256": "h0"},
                        {"path": "b/train-00001.tar", "count": 2, "bytes": 20, "sha256": "h1"},
                    ],
                }
            },
        },
        "total": 7,
        "created_by": CREATED_BY,
        "settings": {"shard_size": 4, "max_image_side": 64, "num_frames": 3},
    }
