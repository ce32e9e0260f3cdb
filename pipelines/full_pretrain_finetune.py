"""The full X²-VLM pipeline: prepare data → pre-train → fine-tune each task → evaluate → publish.

Compile:   python -m pipelines.full_pretrain_finetune --output pipelines/compiled/full_pretrain_finetune.yaml
Run local: make run   (pipelines/run_local.py, kfp.local on a synthetic dataset)
"""

import argparse

from kfp import compiler, dsl

from components.evaluate import evaluate
from components.finetune import finetune
from components.prepare_data.component import prepare_data
from components.pretrain import pretrain
from components.publish import publish

DEFAULT_TASKS = ["retrieval", "grounding"]


@dsl.pipeline(
    name="x2vlm-full-pretrain-finetune",
    description="Prepare shards with Beam, pre-train X²-VLM with DeepSpeed, fine-tune and evaluate each task, "
                "publish the model with its metrics.",
)
def full_pretrain_finetune(
    sources: str,
    model_preset: str = "x2vlm_base",
    pretrain_steps: int = 1000,
    pretrain_batch_size: int = 32,
    tasks: list = DEFAULT_TASKS,
    finetune_steps: int = 500,
    finetune_batch_size: int = 32,
    gpus_per_node: int = 1,
    shard_size: int = 1000,
    max_image_side: int = 384,
    publish_destination: str = "releases",
    model_name: str = "x2vlm",
    pretrain_overrides: list = [],
    finetune_overrides: list = [],
):
    """sources: path or URI of the sources YAML naming the datasets to prepare."""
    data = prepare_data(sources=sources, shard_size=shard_size, max_image_side=max_image_side)
    data.set_display_name("prepare-data")

    trained = pretrain(shards=data.outputs["shards"], model_preset=model_preset, steps=pretrain_steps,
                       batch_size=pretrain_batch_size, nproc_per_node=gpus_per_node,
                       config_overrides=pretrain_overrides)
    trained.set_display_name("pretrain")

    with dsl.ParallelFor(items=tasks, name="per-task") as task:
        tuned = finetune(task=task, shards=data.outputs["shards"], pretrained=trained.outputs["model"],
                         steps=finetune_steps, batch_size=finetune_batch_size, nproc_per_node=gpus_per_node,
                         config_overrides=finetune_overrides)
        tuned.set_display_name("finetune")
        scored = evaluate(task=task, shards=data.outputs["shards"], model=tuned.outputs["model"])
        scored.set_display_name("evaluate")

    released = publish(model=trained.outputs["model"], task_metrics=dsl.Collected(scored.outputs["metrics"]),
                       destination=publish_destination, model_name=model_name)
    released.set_display_name("publish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="pipelines/compiled/full_pretrain_finetune.yaml")
    args = parser.parse_args()
    compiler.Compiler().compile(full_pretrain_finetune, package_path=args.output)
    print(args.output)


if __name__ == "__main__":
    main()
