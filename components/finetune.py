"""KFP component: fine-tune the pre-trained model on one task."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def finetune(
    task: str,
    shards: Input[Dataset],
    pretrained: Input[Model],
    model: Output[Model],
    steps: int = 500,
    batch_size: int = 32,
    nproc_per_node: int = 1,
    config_overrides: list = [],
    task_overrides: dict = {},
    dataset: str = "",
    few_shot: int = 0,
    languages: list = [],
    checkpoint_root: str = "",
    run_id: str = "",
):
    """Runs `x2vlm finetune --task TASK` under torchrun.

    ``dataset``: the shards dataset to train on when not the task's own (e.g. ``xgqa`` for vqa); empty: the
    task's. ``few_shot`` > 0: continue from a task model on that many examples per language of ``languages``
    (empty: every non-English language of the dataset's few_shot split). ``checkpoint_root`` (gs:// or a PVC
    path; empty: beside the model): checkpoints go to <checkpoint_root>/<run_id>/finetune-<task>/, where a
    retried attempt of the same run resumes from them. ``task_overrides``: per task, overrides applied after
    ``config_overrides`` (e.g. {"grounding": ["train.steps=1200"]}), so one fan-out can give each task its own recipe.
    """
    from x2vlm_core.release.lineage import lineage_metadata
    from x2vlm_core.tasks import get_task
    from x2vlm_core.train.launch import run_under_torchrun

    overrides = [
        f"train.steps={steps}",
        f"train.batch_size={batch_size}",
        *config_overrides,
        *task_overrides.get(task, []),
    ]
    command = ["finetune", "--task", task, "--pretrained", pretrained.path, "--shards", shards.path]
    # Unset options stay off the command line, so the CLI's own defaults and checks apply.
    if dataset:
        command += ["--dataset", dataset]
    if few_shot:
        command += ["--few-shot", str(few_shot)]
    if languages:
        command += ["--languages", *[str(language) for language in languages]]
    if checkpoint_root:
        command += ["--checkpoint-root", checkpoint_root, "--run-id", run_id]
    summary = run_under_torchrun(command, model.path, nproc_per_node, overrides)
    model.metadata.update(
        {
            "task": task,
            "dataset": dataset or get_task(task).DATASET,
            "few_shot": few_shot,
            "languages": list(languages),
            "steps": summary["steps"],
            "final_loss": summary["final"].get("loss"),
            "pretrained": pretrained.uri,
            "parent_model": pretrained.uri,
            "train_seconds": summary["seconds"],
            "world_size": summary["world_size"],
            "config_overrides": overrides,
            "checkpoint_root": checkpoint_root,
            "parent_preset": pretrained.metadata.get("preset", "not recorded"),
            "training": {k: v for k, v in summary.items() if k != "history"},
            **lineage_metadata({"shards": shards.uri, "pretrained": pretrained.uri}, shards_root=shards.path),
        }
    )
