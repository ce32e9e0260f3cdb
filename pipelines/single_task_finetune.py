"""Fine-tune and evaluate one task from a base model: the run a user starts from the KFP UI.

Its first step checks every input (known task, existing model folder and shards, learning rate > 0, ...)
so that a mistyped form fails within seconds with a message that says what to fix.

Compile: python -m pipelines compile --pipeline single-task --output pipelines/compiled/single_task_finetune.yaml
"""

from kfp import dsl
from kfp.dsl import Model

from components.evaluate import evaluate
from components.finetune import finetune
from components.gate import task_release_gate
from components.images import IMAGES
from components.publish import publish_task_model
from components.shards_reference import shards_reference
from components.validate_inputs import validate_finetune_request
from pipelines.deployment import DeploymentSettings, on_cpu, on_gpu, release_step

NAME = "x2vlm-single-task-finetune"


def build_pipeline(settings: DeploymentSettings):
    """The pipeline, with the cluster placement of ``settings`` compiled into it."""

    @dsl.pipeline(
        name=NAME,
        description="Fine-tune an X²-VLM model on one task and evaluate it; optionally "
        "publish it when its metrics pass the release gate.",
    )
    def single_task_finetune(
        task: str,
        base_model_uri: str,
        shards_uri: str,
        learning_rate: float = 1e-4,
        warmup_steps: int = 100,
        steps: int = 500,
        batch_size: int = 32,
        gpus_per_node: int = 1,
        config_overrides: list = [],
        dataset: str = "",
        few_shot: int = 0,
        publish_to: str = "",
        model_name: str = "x2vlm",
        min_metrics: dict = {},
        compare_to_latest: bool = True,
        max_regression: float = 0.0,
        checkpoint_root: str = "",
    ):
        """Fine-tune one task and evaluate it.

        Args:
            task: The task to fine-tune, e.g. retrieval or grounding.
            base_model_uri: gs:// URI (or path) of the model folder to start from: a pretrain or finetune step's Model artifact, or a published release.
            shards_uri: gs:// URI (or path) of a prepare-data output (the folder holding index.json) with the task's splits.
            learning_rate: Peak learning rate (AdamW), greater than 0.
            warmup_steps: Linear warm-up steps before the linear decay.
            steps: Optimizer steps.
            batch_size: Batch size, global: summed over the step's processes (each of N gets 1/N of it).
            gpus_per_node: GPUs (and training processes) for the fine-tune step.
            config_overrides: Further training-config overrides, e.g. ["train.optim.weight_decay=0.05"].
            dataset: Shards dataset to fine-tune and evaluate on instead of the task's own, e.g. xgqa for vqa, xflickrco for retrieval, marvl for nlvr2; empty: the task's.
            few_shot: Examples per language for a few-shot fine-tune from an English task model (base_model_uri), drawn from the dataset's few_shot split; 0: an ordinary fine-tune on its train split.
            publish_to: gs:// folder (or path) to publish the fine-tuned model to as <publish_to>/<model_name>-<task>/<version>/, when its metrics pass the gate; empty: do not publish.
            model_name: Name of the base model's release; the task model is published as <model_name>-<task>.
            min_metrics: Thresholds the metrics must reach before publishing, {"<task>/<metric>": value}, e.g. {"retrieval/test_img_r1": 0.5}; empty: none.
            compare_to_latest: Publish only when no metric regressed against the LATEST release of <model_name>-<task> (a first release passes).
            max_regression: Absolute drop allowed per metric against that LATEST release (0: none).
            checkpoint_root: Durable prefix (gs://BUCKET/PREFIX or a PVC path) for the fine-tuning checkpoints, kept under <checkpoint_root>/<pipeline run id>/finetune-<task>/ so that a retried finetune resumes from its latest complete checkpoint; empty: checkpoints stay beside the model.
        """
        checked = validate_finetune_request(
            task=task,
            base_model_uri=base_model_uri,
            shards_uri=shards_uri,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            steps=steps,
            batch_size=batch_size,
            gpus_per_node=gpus_per_node,
            config_overrides=config_overrides,
            dataset=dataset,
            few_shot=few_shot,
            checkpoint_root=checkpoint_root,
        )
        checked.set_display_name("validate-inputs").set_caching_options(False)
        on_cpu(checked, settings, "light")

        base = dsl.importer(artifact_uri=base_model_uri, artifact_class=Model, reimport=False)
        base.set_display_name("base-model").after(checked)
        # By reference: an importer of the shards folder would copy the corpus into every pod.
        shards = shards_reference(shards_uri=shards_uri)
        shards.set_display_name("shards").after(checked)
        on_cpu(shards, settings, "light")

        tuned = finetune(
            task=task,
            shards=shards.outputs["shards"],
            pretrained=base.output,
            steps=steps,
            batch_size=batch_size,
            nproc_per_node=gpus_per_node,
            config_overrides=checked.outputs["config_overrides"],
            dataset=dataset,
            few_shot=few_shot,
            checkpoint_root=checkpoint_root,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        tuned.set_display_name("finetune").set_retry(settings.retries, backoff_duration="120s")
        on_gpu(tuned, settings, "finetune", gpus_per_node)
        scored = evaluate(task=task, shards=shards.outputs["shards"], model=tuned.outputs["model"], dataset=dataset)
        scored.set_display_name("evaluate").set_retry(settings.retries, backoff_duration="30s")
        on_gpu(scored, settings, "evaluate", 1)

        with dsl.If(publish_to != "", name="publish-requested"):
            gate = task_release_gate(
                metrics=scored.outputs["metrics"],
                destination=publish_to,
                release_name=f"{model_name}-{task}",
                min_metrics=min_metrics,
                compare_to_latest=compare_to_latest,
                max_regression=max_regression,
            )
            release_step(gate, "release-gate", settings, "light")
            with dsl.If(gate.outputs["Output"] == True, name="metrics-pass"):  # noqa: E712  (a KFP condition)
                released = publish_task_model(
                    model=tuned.outputs["model"],
                    metrics=scored.outputs["metrics"],
                    destination=publish_to,
                    model_name=model_name,
                    base_model_uri=base_model_uri,
                    container_images=IMAGES,
                )
                release_step(released, "publish", settings, "publish")

    return single_task_finetune


single_task_finetune = build_pipeline(DeploymentSettings())
