"""KFP component: evaluate a fine-tuned model with its task's metrics."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.images import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate(
    task: str,
    shards: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    predictions: Output[Artifact],
    options: list = [],
    dataset: str = "",
    splits: list = [],
):
    """Metrics artifact: every metric (UI) and the task + values as JSON in its file; HTML artifact: the report;
    predictions artifact: one JSON line per query (predictions.jsonl), for error analysis.

    ``options`` are the task's evaluation settings as ``key=value``, e.g. ``["k_test=128"]``. ``dataset`` is
    the shards dataset to evaluate on when not the task's own (e.g. ``marvl`` for nlvr2), ``splits`` the
    splits to score (as `x2vlm evaluate --split`); empty: the task's.
    """
    import json
    import os
    import shutil

    from x2vlm_core.evaluation.run import (
        METRICS_FILE,
        PREDICTIONS_FILE,
        REPORT_FILE,
        run_evaluation,
    )
    from x2vlm_core.tasks import get_task

    details = metrics.path + ".details"  # predictions.jsonl, results files, report.html
    # Empty values mean "not given", exactly as the CLI's absent --dataset / --split.
    values = run_evaluation(
        task,
        model.path,
        shards.path,
        details,
        options,
        dataset=dataset or None,
        splits=[str(split) for split in splits] or None,
    )
    with open(os.path.join(details, METRICS_FILE)) as f:
        written = json.load(f)
    for name, value in values.items():
        metrics.log_metric(name, value)
    metrics.metadata["task"] = task
    metrics.metadata["dataset"] = dataset or get_task(task).DATASET
    metrics.metadata["splits"] = ", ".join(str(split) for split in splits) or "the task's evaluation splits"
    if written.get("unavailable"):
        metrics.metadata["unavailable"] = written["unavailable"]
    shutil.copyfile(os.path.join(details, REPORT_FILE), report.path)
    shutil.copyfile(os.path.join(details, PREDICTIONS_FILE), predictions.path)
    predictions.metadata.update({"task": task, "format": "jsonl", "model": model.uri})
    report.metadata["task"] = task
    report.metadata["inputs"] = {"model": model.uri, "shards": shards.uri}  # lineage: the report's model
    metrics.metadata["inputs"] = {"model": model.uri, "shards": shards.uri}  # lineage: what was evaluated
    with open(metrics.path, "w") as f:
        json.dump({**written, "model": model.uri}, f, indent=2)
