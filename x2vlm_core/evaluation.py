"""Evaluate a fine-tuned model folder on its task's evaluation splits.

Writes to the output folder:
- ``metrics.json``: ``{"task", "metrics": {"<split>_<metric>": value}}`` (plus ``"unavailable"``,
  metric → reason, when some metric could not be computed here);
- ``predictions.jsonl``: one row per query, with its split;
- ``report.html``: metrics and predictions drawn on their images (``report.py``);
- ``results_<split>.json`` for tasks with an upload format (VQA: EvalAI results).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from x2vlm_core.checkpoint import load_model_dir
from x2vlm_core.config_io import apply_overrides, from_dict
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.errors import DataError
from x2vlm_core.report import HtmlReport
from x2vlm_core.tasks import get_task

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.html"


def run_evaluation(task_name: str, model_dir: str | Path, shards_root: str | Path, output_dir: str | Path,
                   options: list[str] | None = None) -> dict[str, Any]:
    """Evaluate and write the files above; returns ``{split_metric: value}``.

    ``options`` are ``key=value`` overrides of the task's ``EvalConfig`` (e.g. ``k_test=128``).
    """
    task = get_task(task_name)
    cfg = from_dict(task.EvalConfig, apply_overrides({}, options or []), where=f"{task_name} evaluation options")
    available = read_index(str(shards_root))["datasets"].get(task.DATASET, {})
    splits = [s for s in task.EVAL_SPLITS if s in available]
    if not splits:
        raise DataError(f"no evaluation split of {task.DATASET!r} in {shards_root} (wanted one of "
                        f"{list(task.EVAL_SPLITS)}, found {sorted(available)}); re-run prepare-data with them")

    model = load_model_dir(model_dir)
    task.check_model(model, model_dir)
    text = TextEncoder(model.config.tokenizer, model.config.max_tokens)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = HtmlReport(task_name, str(model_dir))
    metrics: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    with open(out / PREDICTIONS_FILE, "w") as pred_file:
        for split in splits:
            samples = list(iter_shard_samples(list_shards(str(shards_root), task.DATASET, split)))
            result = task.evaluate(model, samples, text, cfg)
            metrics.update({f"{split}_{name}": value for name, value in result.metrics.items()})
            metrics[f"{split}_count"] = len(samples)
            unavailable.update({f"{split}_{name}": reason for name, reason in result.unavailable.items()})
            for row in result.predictions:
                pred_file.write(json.dumps({"split": split, **row}) + "\n")
            if hasattr(task, "submission"):
                (out / f"results_{split}.json").write_text(json.dumps(task.submission(result.predictions)))
            report.add_split(split, result.metrics, result.unavailable, task.report_section(samples, result.predictions))
            log.info(json.dumps({"event": f"evaluate-{task_name}", "split": split, **result.metrics}))
    written: dict[str, Any] = {"task": task_name, "metrics": metrics}
    if unavailable:
        written["unavailable"] = unavailable
    (out / METRICS_FILE).write_text(json.dumps(written, indent=2))
    report.write(out / REPORT_FILE)
    return metrics
