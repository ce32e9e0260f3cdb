"""KFP component: pre-train X²-VLM on the prepared shards with DeepSpeed under torchrun."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def pretrain(
    shards: Input[Dataset],
    model: Output[Model],
    model_preset: str = "x2vlm_base",
    steps: int = 1000,
    batch_size: int = 32,
    nproc_per_node: int = 1,
    config_overrides: list = [],
):
    """Runs `x2vlm pretrain` under torchrun; the model folder becomes the Model artifact."""
    from x2vlm_core.train.launch import run_under_torchrun

    summary = run_under_torchrun(
        ["pretrain", "--shards", shards.path, "--model", model_preset], model.path, nproc_per_node,
        [f"train.steps={steps}", f"train.batch_size={batch_size}", *config_overrides])
    model.metadata.update({"preset": model_preset, "steps": summary["steps"], "world_size": summary["world_size"],
                           "final_loss": summary["final"].get("loss"), "train_seconds": summary["seconds"],
                           "shards": shards.uri})
