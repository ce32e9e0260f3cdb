"""What a task's evaluation of one split returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SplitResult:
    metrics: dict[str, float]
    # One JSON-able row per query, written to predictions.jsonl.
    predictions: list[dict[str, Any]]
    # Metrics that could not be computed here, and why (e.g. METEOR without Java).
    unavailable: dict[str, str] = field(default_factory=dict)
