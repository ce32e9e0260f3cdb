"""Each task's headline metric and the no-learning baseline it is read against.

A run's summary shows one line per task: the metric a reader looks at first, its value, what a
model that learned nothing scores (chance, the majority answer, one mean box for every query),
and the ratio of the two, so "0.21" reads as "12x chance" at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from x2vlm_core.tasks import get_task


@dataclass(frozen=True)
class Headline:
    task: str
    metric: str  # the metrics.json key
    label: str  # for people
    value: float
    baseline: float | None
    baseline_label: str

    @property
    def times_baseline(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


# task -> (metric suffix, label, baseline: metric suffix or "chance", its label)
_HEADLINES = {
    "retrieval": ("img_r1", "text→image R@1", "chance", "chance (1 / images)"),
    "video_retrieval": ("img_r1", "text→video R@1", "chance", "chance (1 / videos)"),
    "grounding": ("acc_iou50", "acc@0.5", "mean_box_acc_iou50", "one mean box"),
    "grounding_weakly": ("acc_iou50", "acc@0.5", "random_proposal_acc_iou50", "a random proposal"),
    "vqa": ("accuracy", "VQA accuracy", "majority_answer_accuracy", "majority answer"),
    "nlvr2": ("accuracy", "accuracy", "majority_accuracy", "majority label"),
    "xvnli": ("accuracy", "accuracy", "majority_accuracy", "majority label"),
    "video_qa": ("accuracy", "accuracy", "majority_accuracy", "majority answer"),
    "captioning": ("cider", "CIDEr", "", "none"),
}


def headline(task: str, metrics: dict[str, Any]) -> Headline | None:
    """The headline of ``task`` from its ``metrics.json`` metrics, on its first evaluation split present."""
    if task not in _HEADLINES:
        return None
    suffix, label, baseline_suffix, baseline_label = _HEADLINES[task]
    split = next((s for s in get_task(task).EVAL_SPLITS if f"{s}_{suffix}" in metrics), None)
    if split is None:
        return None
    if baseline_suffix == "chance":
        count = metrics.get(f"{split}_count")
        baseline = 1.0 / count if count else None
    else:
        baseline = metrics.get(f"{split}_{baseline_suffix}")
    return Headline(
        task,
        f"{split}_{suffix}",
        f"{label} ({split})",
        float(metrics[f"{split}_{suffix}"]),
        float(baseline) if baseline is not None else None,
        baseline_label,
    )


def headline_table(metrics_by_task: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: task, metric, value, baseline, x baseline."""
    rows = [("task", "metric", "value", "baseline", "× baseline")]
    for task, metrics in sorted(metrics_by_task.items()):
        line = headline(task, metrics)
        if line is None:
            rows.append((task, "(no headline metric)", "", "", ""))
            continue
        baseline = f"{line.baseline:.3f} {line.baseline_label}" if line.baseline is not None else "—"
        ratio = f"{line.times_baseline:.1f}×" if line.times_baseline is not None else "—"
        rows.append((task, line.label, f"{line.value:.3f}", baseline, ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
