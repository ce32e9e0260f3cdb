"""The release gate: may a run's evaluated models be published?

A release passes when every metric it is compared on is good enough:

- each ``min_metrics`` threshold (``"<task>/<metric>": value``, e.g. ``"retrieval/test_img_r1": 0.5``)
  is met, and
- with ``compare_to_latest``, no task metric falls more than ``max_regression`` (absolute) below the
  same metric of the release that ``<destination>/<name>/LATEST`` names. A name with no release yet
  has nothing to regress against, so its first release passes.

Every metric here is better when higher (recall, accuracy, IoU accuracy, BLEU/CIDEr). Counts and the
no-learning baselines written beside the metrics (``*_count``, ``majority_*``, ``mean_box_*``,
``chance``) describe the data, not the model, and are not compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, cast

from x2vlm_core import storage
from x2vlm_core.errors import ConfigError, ReleaseError
from x2vlm_core.release.fetch import LATEST, resolve_release

METRICS_FILE = "metrics.json"  # in a release: {task: {metric: value}}
_DATA_NOT_MODEL = ("majority", "mean_box", "chance")


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed, one line each
    compared_to: str = ""  # the LATEST release compared against; empty: none
    checked: int = 0  # how many metric comparisons were made

    def summary(self) -> str:
        if self.passed:
            against = f"against {self.compared_to}" if self.compared_to else "with no earlier release to compare"
            return f"publish: {self.checked} check(s) passed {against}"
        return "do not publish: " + "; ".join(self.reasons)


def is_quality_metric(name: str, value: Any) -> bool:
    """A model-quality number (higher is better), not a count or a no-learning baseline."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return not name.endswith("count") and not any(marker in name for marker in _DATA_NOT_MODEL)


def parse_thresholds(min_metrics: dict[str, Any]) -> dict[tuple[str, str], float]:
    """``{"task/metric": value}`` → ``{(task, metric): value}``; a malformed entry is a ConfigError."""
    parsed: dict[tuple[str, str], float] = {}
    for key, value in (min_metrics or {}).items():
        task, _, metric = str(key).partition("/")
        if not task or not metric or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f'min_metrics entry {key!r}: {value!r} must look like "<task>/<metric>": number, '
                'e.g. {"retrieval/test_img_r1": 0.5}'
            )
        parsed[(task, metric)] = float(value)
    return parsed


def latest_release_metrics(destination: str, name: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """(release URI, its metrics) of the release ``<destination>/<name>/LATEST`` names; None when the name
    has no release yet. A LATEST that names an incomplete release is an error, not a first release."""
    base = storage.join(destination, name)
    if not storage.exists(storage.join(base, LATEST)):
        return None
    release = resolve_release(base)
    where = storage.join(release, METRICS_FILE)
    if not storage.exists(where):
        return release, {}
    try:
        metrics = json.loads(storage.read_bytes(where))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{where} is not valid JSON ({exc}); the release is damaged") from None
    return release, metrics if isinstance(metrics, dict) else {}


def decide(
    candidate: dict[str, dict[str, Any]],
    min_metrics: dict[str, Any] | None = None,
    baseline: tuple[str, dict[str, dict[str, Any]]] | None = None,
    max_regression: float = 0.0,
) -> GateDecision:
    """Compare ``candidate`` ({task: {metric: value}}) with the thresholds and the baseline release."""
    if max_regression < 0:
        raise ConfigError(f"max_regression must be 0 or more (an absolute drop allowed), got {max_regression}")
    reasons: list[str] = []
    checked = 0
    for (task, metric), minimum in sorted(parse_thresholds(min_metrics or {}).items()):
        value = candidate.get(task, {}).get(metric)
        if not is_quality_metric(metric, value):
            produced = sorted(
                f"{t}/{m}" for t, values in candidate.items() for m, v in values.items() if is_quality_metric(m, v)
            )
            raise ConfigError(
                f"min_metrics names {task}/{metric}, which evaluation did not produce; it produced: "
                f"{', '.join(produced) or 'nothing'}"
            )
        checked += 1
        if cast(float, value) < minimum:  # a number: is_quality_metric said so
            reasons.append(f"{task}/{metric} = {value:.4f} is below the threshold {minimum:.4f}")
    compared_to = ""
    if baseline is not None:
        compared_to, previous = baseline
        for task, values in sorted(candidate.items()):
            for metric, value in sorted(values.items()):
                before = (previous.get(task) or {}).get(metric)
                if not is_quality_metric(metric, value) or not is_quality_metric(metric, before):
                    continue
                checked += 1
                if value < cast(float, before) - max_regression:  # a number: is_quality_metric said so
                    reasons.append(
                        f"{task}/{metric} = {value:.4f} regressed from {before:.4f} in {compared_to}"
                        + (f" (more than the allowed {max_regression})" if max_regression else "")
                    )
    return GateDecision(passed=not reasons, reasons=reasons, compared_to=compared_to, checked=checked)


def gate_release(
    candidate: dict[str, dict[str, Any]],
    destination: str,
    name: str,
    min_metrics: dict[str, Any] | None = None,
    compare_to_latest: bool = True,
    max_regression: float = 0.0,
) -> GateDecision:
    """The gate for publishing ``candidate`` as a new release of ``name`` under ``destination``."""
    parse_thresholds(min_metrics or {})  # a malformed threshold fails before any storage is read
    baseline = latest_release_metrics(destination, name) if compare_to_latest else None
    return decide(candidate, min_metrics, baseline, max_regression)
