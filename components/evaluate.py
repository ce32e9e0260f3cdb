"""KFP component: evaluate a fine-tuned model with its task's metrics."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate(
    task: str,
    shards: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
):
    """Writes every metric to the Metrics artifact (UI) and the task + values as JSON to its file."""
    import json

    from x2vlm_core.evaluation import run_evaluation

    values = run_evaluation(task, model.path, shards.path, metrics.path + ".details")
    for name, value in values.items():
        metrics.log_metric(name, value)
    metrics.metadata["task"] = task
    with open(metrics.path, "w") as f:
        json.dump({"task": task, "metrics": values, "model": model.uri}, f, indent=2)
