"""index.json's content: every shard per dataset and split with its count, size and sha256 (schema: x2vlm_core.data.shards)."""

from __future__ import annotations

from typing import Any

from x2vlm_core.dataprep.outputs import CREATED_BY


def build_index(shards: list[dict[str, Any]], settings: dict[str, int]) -> dict[str, Any]:
    """The index of the written ``shards`` (entries from ``sharding.write_one_shard``) and the job ``settings``."""
    datasets: dict[str, dict[str, Any]] = {}
    for shard in sorted(shards, key=lambda s: (s["dataset"], s["split"], s["shard"])):
        entry = datasets.setdefault(shard["dataset"], {}).setdefault(shard["split"], {"shards": [], "count": 0})
        entry["shards"].append({name: shard[name] for name in ("path", "count", "bytes", "sha256")})
        entry["count"] += shard["count"]
    return {
        "datasets": datasets,
        "total": sum(split["count"] for splits in datasets.values() for split in splits.values()),
        "created_by": CREATED_BY,
        "settings": dict(settings),
    }
