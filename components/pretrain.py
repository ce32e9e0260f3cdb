"""KFP component: pre-train X²-VLM on the prepared shards with DeepSpeed under torchrun.

One node: torchrun runs in this pod. More nodes: the run is a Kubeflow Trainer TrainJob
(components/runtime/trainjob.py) and this pod only submits it, follows it and records its outcome.
"""

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
    num_nodes: int = 1,
    gpus_per_node: int = 1,
    config_overrides: list = [],
    trainjob_runtime: str = "x2vlm-torch-distributed",
    kueue_queue: str = "",
    trainer_pods: dict = {},
    checkpoint_root: str = "",
    run_id: str = "",
    trainer_image: str = "",
):
    """Runs `x2vlm pretrain` (one process per GPU); the model folder becomes the Model artifact.

    `checkpoint_root` (gs:// or a PVC path; empty: beside the model): checkpoints go to
    <checkpoint_root>/<run_id>/pretrain/, where a retried attempt of the same run resumes from them.
    `trainer_image`: the TrainJob nodes' image (the pipeline passes the train image's reference, by
    digest where `make images PUSH=1` recorded one); empty for the train image's tag.
    """
    from components.runtime.trainjob import train_as_trainjob
    from x2vlm_core.release.lineage import lineage_metadata
    from x2vlm_core.train.launch import run_under_torchrun

    cli_args = ["pretrain", "--shards", shards.path, "--model", model_preset]
    if checkpoint_root:
        cli_args += ["--checkpoint-root", checkpoint_root, "--run-id", run_id]
    overrides = [f"train.steps={steps}", f"train.batch_size={batch_size}", *config_overrides]
    if num_nodes <= 1:
        summary = run_under_torchrun(cli_args, model.path, gpus_per_node, overrides)
        ran_on = {"launcher": "torchrun", "num_nodes": 1, "gpus_per_node": gpus_per_node}
    else:
        summary, ran_on = train_as_trainjob(
            cli_args,
            model.uri,
            model.path,
            overrides,
            input_uris=[shards.uri],
            num_nodes=num_nodes,
            gpus_per_node=gpus_per_node,
            runtime=trainjob_runtime,
            queue=kueue_queue,
            pods=trainer_pods,
            image=trainer_image,
        )
    model.metadata.update(
        {
            "preset": model_preset,
            "steps": summary["steps"],
            "world_size": summary["world_size"],
            "final_loss": summary["final"].get("loss"),
            "train_seconds": summary["seconds"],
            "shards": shards.uri,
            "parent_model": "",
            "config_overrides": overrides,
            "checkpoint_root": checkpoint_root,
            "ran_on": ran_on,
            # The whole training summary but its per-step history (that stays in training.json).
            "training": {k: v for k, v in summary.items() if k != "history"},
            **lineage_metadata({"shards": shards.uri}, shards_root=shards.path),
        }
    )
