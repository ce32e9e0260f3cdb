"""Evaluate a fine-tuned model folder on its task's evaluation splits."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from x2vlm_core.checkpoint import load_model_dir
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.errors import DataError
from x2vlm_core.tasks import get_task

log = logging.getLogger(__name__)


def run_evaluation(task_name: str, model_dir: str | Path, shards_root: str | Path,
                   output_dir: str | Path) -> dict[str, Any]:
    """Writes ``metrics.json`` and ``predictions.jsonl``; returns ``{split_metric: value}``."""
    task = get_task(task_name)
    available = read_index(str(shards_root))["datasets"].get(task.DATASET, {})
    splits = [s for s in task.EVAL_SPLITS if s in available]
    if not splits:
        raise DataError(f"no evaluation split of {task.DATASET!r} in {shards_root} (wanted one of "
                        f"{list(task.EVAL_SPLITS)}, found {sorted(available)}); re-run prepare-data with them")

    model = load_model_dir(model_dir)
    text = TextEncoder(model.config.tokenizer, model.config.max_tokens)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    with open(out / "predictions.jsonl", "w") as pred_file:
        for split in splits:
            samples = list(iter_shard_samples(list_shards(str(shards_root), task.DATASET, split)))
            split_metrics, predictions = task.evaluate(model, samples, text)
            metrics.update({f"{split}_{name}": value for name, value in split_metrics.items()})
            metrics[f"{split}_count"] = len(samples)
            for row in predictions:
                pred_file.write(json.dumps({"split": split, **row}) + "\n")
            log.info(json.dumps({"event": f"evaluate-{task_name}", "split": split, **split_metrics}))
    (out / "metrics.json").write_text(json.dumps({"task": task_name, "metrics": metrics}, indent=2))
    return metrics
