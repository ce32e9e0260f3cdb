"""Every per-record step ends in one of two outcomes: a sample, or a reject naming its reason."""

from __future__ import annotations

from typing import Any

# The tags double as the Beam job's output names, so a step's outcome maps onto its output directly.
SAMPLES = "samples"
REJECTED = "rejected"

Outcome = tuple[str, dict[str, Any]]


def reject(record: dict[str, Any], reason: str) -> dict[str, Any]:
    """The reject entry of a record or sample: where it came from and why it is not in a shard."""
    return {
        "key": record["key"],
        "dataset": record["dataset"],
        "source": record["source"],
        "split": record["split"],
        "image_paths": record["image_paths"],
        "reason": reason,
    }
