"""KFP components that check a run's inputs first, so a bad run fails in seconds with a readable message."""

from typing import NamedTuple

from kfp import dsl

# The light CPU image: these steps read a few files and need no GPU.
from components.images import PUBLISH_IMAGE


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def validate_full_run(
    sources: str,
    output_root: str,
    tasks: list,
    model_preset: str,
    pretrain_steps: int,
    pretrain_batch_size: int,
    finetune_steps: int,
    finetune_batch_size: int,
    num_nodes: int,
    gpus_per_node: int,
    pretrain_overrides: list,
    finetune_overrides: list,
    gpu_node_selector: dict,
    gpu_tolerations: list,
    pod_resources: dict,
    data_root: str = "",
    beam_options: list = [],
    checkpoint_root: str = "",
    finetune_task_overrides: dict = {},
) -> NamedTuple(
    "FullRunPlan",
    [
        ("pretrain_pod_gpus", int),
        ("pretrain_pod_node_selector", dict),
        ("pretrain_pod_tolerations", list),
        ("pretrain_pod_cpu_request", str),
        ("pretrain_pod_cpu_limit", str),
        ("pretrain_pod_memory_request", str),
        ("pretrain_pod_memory_limit", str),
    ],
):
    """Checks the full pipeline's parameters (``validate_run``: every problem at once), and places the pretrain pod: on one node it trains itself
    (GPUs, GPU node pool, `pod_resources["pretrain"]`); with num_nodes > 1 it only submits and follows a TrainJob
    (no GPU, any node, `pod_resources["light"]`)."""
    from collections import namedtuple

    from x2vlm_core.run_checks import check_full_run

    check_full_run(
        sources,
        list(tasks),
        model_preset,
        pretrain_steps,
        finetune_steps,
        pretrain_batch_size,
        finetune_batch_size,
        num_nodes,
        gpus_per_node,
        list(pretrain_overrides),
        list(finetune_overrides),
        output_root,
        checkpoint_root=checkpoint_root,
        data_root=data_root,
        beam_options=list(beam_options),
        finetune_task_overrides=dict(finetune_task_overrides),
    )
    resources = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    plan = namedtuple(
        "FullRunPlan",
        ["pretrain_pod_gpus", "pretrain_pod_node_selector", "pretrain_pod_tolerations"]
        + [f"pretrain_pod_{name}" for name in resources],
    )
    if num_nodes == 1:
        pod = pod_resources["pretrain"]
        return plan(gpus_per_node, dict(gpu_node_selector), list(gpu_tolerations), *[pod[name] for name in resources])
    pod = pod_resources["light"]
    return plan(0, {}, [], *[pod[name] for name in resources])


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def validate_finetune_request(
    task: str,
    base_model_uri: str,
    shards_uri: str,
    learning_rate: float,
    warmup_steps: int,
    steps: int,
    batch_size: int,
    gpus_per_node: int,
    config_overrides: list,
    dataset: str = "",
    few_shot: int = 0,
    checkpoint_root: str = "",
) -> NamedTuple("FinetunePlan", [("config_overrides", list)]):
    """Checks a single-task request; `config_overrides` are the training overrides the finetune step applies."""
    from collections import namedtuple

    from x2vlm_core.run_checks import check_finetune_request

    overrides = check_finetune_request(
        task,
        base_model_uri,
        shards_uri,
        learning_rate,
        warmup_steps,
        steps,
        batch_size,
        gpus_per_node,
        list(config_overrides),
        dataset,
        few_shot,
        checkpoint_root=checkpoint_root,
    )
    return namedtuple("FinetunePlan", ["config_overrides"])(overrides)
