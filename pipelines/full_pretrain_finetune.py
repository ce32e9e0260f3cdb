"""The full X²-VLM pipeline: prepare data → pre-train → fine-tune each task → evaluate → publish.

Compile:   python -m pipelines compile   (or make compile; pipelines/submit.py also uploads, runs, schedules)
Run local: make run   (pipelines/run_local.py, kfp.local on a synthetic dataset)
"""

from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model

from components.evaluate import evaluate
from components.finetune import finetune
from components.gate import release_gate
from components.images import IMAGES, TRAIN_IMAGE
from components.prepare_data.component import prepare_data
from components.pretrain import pretrain
from components.publish import publish, publish_task_models
from components.run_status import record_run_status
from components.validate_inputs import validate_full_run
from pipelines.deployment import DeploymentSettings, on_cpu, on_gpu, pod_resources, release_step, trainer_pods

DEFAULT_TASKS = ["retrieval", "grounding"]
# The project's ClusterTrainingRuntime (manifests/base/cluster/runtime): Pod Security "restricted" pods.
DEFAULT_TRAINJOB_RUNTIME = "x2vlm-torch-distributed"
NAME = "x2vlm-full-pretrain-finetune"
TaskModels = NamedTuple("TaskModels", [("models", List[Model]), ("metrics", List[Metrics])])


def build_pipeline(settings: DeploymentSettings):
    """The pipeline, with the cluster placement of ``settings`` compiled into it."""

    # The fan-out is a pipeline of its own that returns the collected models and metrics: KFP 2.17's
    # compiler cannot hand a dsl.Collected artifact list into a dsl.If group, a pipeline output it can.
    @dsl.pipeline(name="finetune-and-evaluate")
    def finetune_and_evaluate(
        tasks: list,
        shards: Dataset,
        pretrained: Model,
        steps: int,
        batch_size: int,
        gpus_per_node: int,
        config_overrides: list,
        task_overrides: dict,
        checkpoint_root: str,
    ) -> TaskModels:
        with dsl.ParallelFor(items=tasks, parallelism=settings.max_parallel_tasks, name="per-task") as task:
            tuned = finetune(
                task=task,
                shards=shards,
                pretrained=pretrained,
                steps=steps,
                batch_size=batch_size,
                nproc_per_node=gpus_per_node,
                config_overrides=config_overrides,
                task_overrides=task_overrides,
                checkpoint_root=checkpoint_root,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
            # Retried after a lost node or preemption: it resumes from its checkpoints under checkpoint_root
            # (the run id scopes them to this run), or without one trains again from the pre-trained model.
            tuned.set_display_name("finetune").set_retry(settings.retries, backoff_duration="120s")
            on_gpu(tuned, settings, "finetune", gpus_per_node)
            scored = evaluate(task=task, shards=shards, model=tuned.outputs["model"])
            scored.set_display_name("evaluate").set_retry(settings.retries, backoff_duration="30s")
            on_gpu(scored, settings, "evaluate", 1)
        return TaskModels(
            models=dsl.Collected(tuned.outputs["model"]), metrics=dsl.Collected(scored.outputs["metrics"])
        )

    @dsl.pipeline(
        name=NAME,
        description="Prepare shards with Beam, pre-train X²-VLM with DeepSpeed (multi-node as a Kubeflow "
        "Trainer TrainJob), fine-tune and evaluate each task; when the metrics pass the gate, "
        "publish the pre-trained model and each task model.",
    )
    def full_pretrain_finetune(
        sources: str,
        output_root: str = "gs://x2vlm-platform/releases",
        model_preset: str = "x2vlm_base",
        pretrain_steps: int = 1000,
        pretrain_batch_size: int = 32,
        tasks: list = DEFAULT_TASKS,
        finetune_steps: int = 500,
        finetune_batch_size: int = 32,
        num_nodes: int = 1,
        gpus_per_node: int = 1,
        trainjob_runtime: str = DEFAULT_TRAINJOB_RUNTIME,
        kueue_queue: str = "",
        shard_size: int = 1000,
        max_image_side: int = 384,
        num_frames: int = 3,
        beam_options: list = [],
        model_name: str = "x2vlm",
        pretrain_overrides: list = [],
        finetune_overrides: list = [],
        finetune_task_overrides: dict = {},
        data_snapshot: str = "",
        data_root: str = "",
        checkpoint_root: str = "",
        min_metrics: dict = {},
        compare_to_latest: bool = True,
        max_regression: float = 0.0,
    ):
        """Pre-train X²-VLM and fine-tune, evaluate and publish it.

        Args:
            sources: Path or gs:// URI of the sources YAML that names the datasets to prepare (COCO, Visual Genome, Karpathy splits, RefCOCO+, ...), as seen from the cluster.
            output_root: gs:// folder (or path) that receives the published release (<output_root>/<model_name>/<version>/) and each run's status record (<output_root>/run-status/).
            model_preset: Model preset: x2vlm_base, x2vlm_large, x2vlm_tiny (tests) or a *_video variant.
            pretrain_steps: Pre-training optimizer steps.
            pretrain_batch_size: Pre-training image-text batch size, global: summed over every process of every node (each of N processes gets 1/N of it).
            tasks: Fine-tuning tasks, one parallel branch each (fine-tune, then evaluate).
            finetune_steps: Fine-tuning optimizer steps per task.
            finetune_batch_size: Fine-tuning batch size, global: summed over the fine-tune step's processes.
            num_nodes: Pre-training nodes; more than 1 runs pre-training as a Kubeflow Trainer TrainJob.
            gpus_per_node: GPUs (and training processes) per node, for pre-training and fine-tuning.
            trainjob_runtime: ClusterTrainingRuntime of the multi-node TrainJob; the default is the project's (manifests/), whose pods Pod Security "restricted" admits.
            kueue_queue: Kueue LocalQueue for the TrainJob (kueue.x-k8s.io/queue-name); empty: not queued.
            shard_size: Samples per webdataset shard.
            max_image_side: Longest image side kept in the shards (pixels).
            num_frames: Frames sampled from each video (WebVid, MSR-VTT); 3 is X²-VLM's frame_len.
            beam_options: Beam pipeline flags for data preparation, e.g. ["--runner=DataflowRunner", "--project=P", "--region=R", "--temp_location=gs://B/tmp"]; empty: the local DirectRunner.
            model_name: Release name; the pre-trained model's versions go under <output_root>/<model_name>/, each task model's under <output_root>/<model_name>-<task>/.
            pretrain_overrides: Training-config overrides for pre-training, e.g. ["train.optim.lr=5e-5"].
            finetune_overrides: Training-config overrides for fine-tuning, e.g. ["train.optim.warmup_steps=100"].
            finetune_task_overrides: A task's own fine-tuning overrides, applied after finetune_overrides, e.g. {"grounding": ["train.steps=1200", "train.optim.lr=1e-4"]}; tasks not named take the shared ones.
            data_snapshot: Which snapshot of the data behind `sources` to train on, e.g. a date (2026-05-01) or a dataset version; part of the cache key, so a new value prepares the data and trains again while an unchanged one reuses the cached results. Schedules set it to [[ScheduledTime]].
            data_root: Durable prefix (gs://BUCKET/PREFIX on a cluster) that keeps the shards, under <data_root>/shards/<hash of the sources and data options>/, written there by the Beam workers; the Dataset artifact is then a small manifest that the training and evaluation steps follow, so no step copies the corpus. Empty: the shards are the artifact itself (a remote Beam runner then cannot write them).
            checkpoint_root: Durable prefix (gs://BUCKET/PREFIX, or a PVC path every node mounts) for pre-training and fine-tuning checkpoints, kept under <checkpoint_root>/<pipeline run id>/<step>/ so that a retried step resumes from its latest complete checkpoint; empty: checkpoints stay beside the model in the step's artifact.
            min_metrics: Thresholds the metrics must reach before anything is published, {"<task>/<metric>": value}, e.g. {"retrieval/test_img_r1": 0.5}; empty: none.
            compare_to_latest: Publish only when no task metric regressed against the LATEST release of model_name (a first release passes).
            max_regression: Absolute drop allowed per metric against the LATEST release (0: none).
        """
        status = record_run_status(output_root=output_root)
        status.set_display_name("record-run-status").set_caching_options(False)
        on_cpu(status, settings, "light")

        with dsl.ExitHandler(status, name="x2vlm-run"):
            checked = validate_full_run(
                sources=sources,
                output_root=output_root,
                tasks=tasks,
                model_preset=model_preset,
                pretrain_steps=pretrain_steps,
                pretrain_batch_size=pretrain_batch_size,
                finetune_steps=finetune_steps,
                finetune_batch_size=finetune_batch_size,
                num_nodes=num_nodes,
                gpus_per_node=gpus_per_node,
                pretrain_overrides=pretrain_overrides,
                finetune_overrides=finetune_overrides,
                finetune_task_overrides=finetune_task_overrides,
                gpu_node_selector=dict(settings.gpu_node_selector),
                gpu_tolerations=list(settings.gpu_tolerations),
                pod_resources=pod_resources(settings),
                data_root=data_root,
                beam_options=beam_options,
                checkpoint_root=checkpoint_root,
            )
            # Inputs may have changed since the last run (a source file deleted); always check again.
            checked.set_display_name("validate-inputs").set_caching_options(False)
            on_cpu(checked, settings, "light")

            data = prepare_data(
                sources=sources,
                shard_size=shard_size,
                max_image_side=max_image_side,
                num_frames=num_frames,
                beam_options=beam_options,
                snapshot=data_snapshot,
                data_root=data_root,
            )
            # Cached on its inputs: the same sources, snapshot, shard size and image side reuse the shards
            # (and so everything downstream); a new data_snapshot runs it all again.
            data.set_display_name("prepare-data").set_caching_options(True).set_retry(
                settings.retries, backoff_duration="60s", backoff_factor=2
            )
            data.after(checked)
            on_cpu(data, settings, "prepare-data", shard_cache=True)

            trained = pretrain(
                shards=data.outputs["shards"],
                model_preset=model_preset,
                steps=pretrain_steps,
                batch_size=pretrain_batch_size,
                num_nodes=num_nodes,
                gpus_per_node=gpus_per_node,
                config_overrides=pretrain_overrides,
                trainjob_runtime=trainjob_runtime,
                kueue_queue=kueue_queue,
                trainer_pods=trainer_pods(settings),
                checkpoint_root=checkpoint_root,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                trainer_image=TRAIN_IMAGE,
            )
            # A retry keeps the pipeline run id: with checkpoint_root it resumes from the latest complete
            # checkpoint there. Without, a TrainJob resumes from the checkpoints in the Model artifact
            # (a Failed one is deleted and created again), and one-node training starts over.
            trained.set_display_name("pretrain").set_retry(settings.retries, backoff_duration="300s")
            on_gpu(
                trained, settings, "pretrain", checked.outputs["pretrain_pod_gpus"], placement=checked, shard_cache=True
            )

            tasks_done = finetune_and_evaluate(
                tasks=tasks,
                shards=data.outputs["shards"],
                pretrained=trained.outputs["model"],
                steps=finetune_steps,
                batch_size=finetune_batch_size,
                gpus_per_node=gpus_per_node,
                config_overrides=finetune_overrides,
                task_overrides=finetune_task_overrides,
                checkpoint_root=checkpoint_root,
            )
            tasks_done.set_display_name("per-task")

            gate = release_gate(
                task_metrics=tasks_done.outputs["metrics"],
                destination=output_root,
                release_name=model_name,
                min_metrics=min_metrics,
                compare_to_latest=compare_to_latest,
                max_regression=max_regression,
            )
            release_step(gate, "release-gate", settings, "light")

            with dsl.If(gate.outputs["Output"] == True, name="metrics-pass"):  # noqa: E712  (a KFP condition)
                released = publish(
                    model=trained.outputs["model"],
                    task_metrics=tasks_done.outputs["metrics"],
                    destination=output_root,
                    model_name=model_name,
                    container_images=IMAGES,
                )
                release_step(released, "publish", settings, "publish")

                task_releases = publish_task_models(
                    models=tasks_done.outputs["models"],
                    task_metrics=tasks_done.outputs["metrics"],
                    destination=output_root,
                    model_name=model_name,
                    parent_release=released.outputs["release_uri"],
                    version=released.outputs["version"],
                    container_images=IMAGES,
                )
                release_step(task_releases, "publish-task-models", settings, "publish")

    return full_pretrain_finetune


full_pretrain_finetune = build_pipeline(DeploymentSettings())
