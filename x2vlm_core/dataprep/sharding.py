"""Shards: the shard each key lands in, routing samples to it, and writing one shard.

A record's shard depends only on the sorted keys of its (dataset, split), so the same input gives
the same shard bytes on any runner.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from x2vlm_core import storage
from x2vlm_core.data.shard_writer import shard_relpath, write_shard
from x2vlm_core.dataprep.stats import samples_stats
from x2vlm_core.errors import DataError


def assign_shards(
    split: tuple[str, str], keys: Iterable[str], shard_size: int
) -> Iterator[tuple[tuple[str, str, str], int]]:
    """``((dataset, split, key), shard number)`` for every key of one (dataset, split): shard_size keys per shard, in key order."""
    dataset, split_name = split
    ordered = sorted(keys)
    for position, key in enumerate(ordered):
        if position and ordered[position - 1] == key:
            raise DataError(
                f"dataset {dataset!r} split {split_name!r}: two records have the key {key!r}; "
                "two sources with overlapping ids feed one dataset, so give them different 'dataset' names"
            )
        yield (dataset, split_name, key), position // shard_size


def route_to_shard(
    sample_key: tuple[str, str, str], joined: dict[str, list[Any]]
) -> Iterator[tuple[tuple[str, str, int], dict[str, Any]]]:
    """Send a sample to its shard; a sample without a shard number lost to a duplicate (its reject is already out).

    ``joined`` holds the key's ``shard`` numbers (none or one) and its ``sample`` (one).
    """
    dataset, split, _ = sample_key
    if not joined["shard"]:
        return
    (shard,), (sample,) = joined["shard"], joined["sample"]
    yield (dataset, split, shard), sample


def write_one_shard(
    shard_key: tuple[str, str, int], samples: Iterable[dict[str, Any]], output_dir: str
) -> dict[str, Any]:
    """Write one shard (samples sorted by key) and return its index entry plus this shard's statistics."""
    dataset, split, shard = shard_key
    ordered = sorted(samples, key=lambda s: s["key"])
    relative = shard_relpath(dataset, split, shard)
    written = write_shard(
        storage.join(output_dir, relative),
        ({"key": s["key"], "meta": s["meta"], "images": s["images"]} for s in ordered),
    )
    return {
        "dataset": dataset,
        "split": split,
        "shard": shard,
        "path": relative,
        "count": written["count"],
        "bytes": written["bytes"],
        "sha256": written["sha256"],
        **samples_stats(ordered),
    }
