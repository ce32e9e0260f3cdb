"""The full X²-VLM pipeline: prepare data → pre-train → fine-tune each task → evaluate → publish.

Compile:   python -m pipelines compile   (or make compile; pipelines/submit.py also uploads, runs, schedules)
Run local: make run   (pipelines/run_local.py, kfp.local on a synthetic dataset)
"""

from kfp import dsl

from components.evaluate import evaluate
from components.finetune import finetune
from components.prepare_data.component import prepare_data
from components.pretrain import pretrain
from components.publish import publish
from components.run_status import record_run_status
from components.validate_inputs import validate_full_run
from pipelines.deployment import DeploymentSettings, on_cpu, on_gpu, trainer_pods

DEFAULT_TASKS = ["retrieval", "grounding"]
NAME = "x2vlm-full-pretrain-finetune"


def build_pipeline(settings: DeploymentSettings):
    """The pipeline, with the cluster placement of ``settings`` compiled into it."""

    @dsl.pipeline(
        name=NAME,
        description="Prepare shards with Beam, pre-train X²-VLM with DeepSpeed (multi-node as a Kubeflow "
                    "Trainer TrainJob), fine-tune and evaluate each task, publish the model with its metrics.",
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
        trainjob_runtime: str = "torch-distributed",
        kueue_queue: str = "",
        shard_size: int = 1000,
        max_image_side: int = 384,
        num_frames: int = 3,
        beam_options: list = [],
        model_name: str = "x2vlm",
        pretrain_overrides: list = [],
        finetune_overrides: list = [],
    ):
        """Pre-train X²-VLM and fine-tune, evaluate and publish it.

        Args:
            sources: Path or gs:// URI of the sources YAML that names the datasets to prepare (COCO, Visual Genome, Karpathy splits, RefCOCO+, ...), as seen from the cluster.
            output_root: gs:// folder (or path) that receives the published release (<output_root>/<model_name>/<version>/) and each run's status record (<output_root>/run-status/).
            model_preset: Model preset: x2vlm_base, x2vlm_large, x2vlm_tiny (tests) or a *_video variant.
            pretrain_steps: Pre-training optimizer steps.
            pretrain_batch_size: Pre-training image-text batch size per process.
            tasks: Fine-tuning tasks, one parallel branch each (fine-tune, then evaluate).
            finetune_steps: Fine-tuning optimizer steps per task.
            finetune_batch_size: Fine-tuning batch size per process.
            num_nodes: Pre-training nodes; more than 1 runs pre-training as a Kubeflow Trainer TrainJob.
            gpus_per_node: GPUs (and training processes) per node, for pre-training and fine-tuning.
            trainjob_runtime: ClusterTrainingRuntime of the multi-node TrainJob.
            kueue_queue: Kueue LocalQueue for the TrainJob (kueue.x-k8s.io/queue-name); empty: not queued.
            shard_size: Samples per webdataset shard.
            max_image_side: Longest image side kept in the shards (pixels).
            num_frames: Frames sampled from each video (WebVid, MSR-VTT); 3 is X²-VLM's frame_len.
            beam_options: Beam pipeline flags for data preparation, e.g. ["--runner=DataflowRunner", "--project=P", "--region=R", "--temp_location=gs://B/tmp"]; empty: the local DirectRunner.
            model_name: Release name; versions go under <output_root>/<model_name>/.
            pretrain_overrides: Training-config overrides for pre-training, e.g. ["train.optim.lr=5e-5"].
            finetune_overrides: Training-config overrides for fine-tuning, e.g. ["train.optim.warmup_steps=100"].
        """
        status = record_run_status(output_root=output_root)
        status.set_display_name("record-run-status").set_caching_options(False)
        on_cpu(status, settings)

        with dsl.ExitHandler(status, name="x2vlm-run"):
            checked = validate_full_run(
                sources=sources, output_root=output_root, tasks=tasks, model_preset=model_preset, pretrain_steps=pretrain_steps,
                pretrain_batch_size=pretrain_batch_size, finetune_steps=finetune_steps,
                finetune_batch_size=finetune_batch_size, num_nodes=num_nodes, gpus_per_node=gpus_per_node,
                pretrain_overrides=pretrain_overrides, finetune_overrides=finetune_overrides,
                gpu_node_selector=dict(settings.gpu_node_selector), gpu_tolerations=list(settings.gpu_tolerations))
            # Inputs may have changed since the last run (a source file deleted); always check again.
            checked.set_display_name("validate-inputs").set_caching_options(False)
            on_cpu(checked, settings)

            data = prepare_data(sources=sources, shard_size=shard_size, max_image_side=max_image_side,
                                num_frames=num_frames, beam_options=beam_options)
            # Cached on its inputs: the same sources, shard size and image side reuse the shards.
            data.set_display_name("prepare-data").set_caching_options(True).set_retry(
                settings.retries, backoff_duration="60s", backoff_factor=2)
            data.after(checked)
            on_cpu(data, settings, shard_cache=True)

            trained = pretrain(shards=data.outputs["shards"], model_preset=model_preset, steps=pretrain_steps,
                               batch_size=pretrain_batch_size, num_nodes=num_nodes, gpus_per_node=gpus_per_node,
                               config_overrides=pretrain_overrides, trainjob_runtime=trainjob_runtime,
                               kueue_queue=kueue_queue, trainer_pods=trainer_pods(settings))
            # No retry: a second attempt would start training (or a TrainJob) over.
            trained.set_display_name("pretrain")
            on_gpu(trained, settings, checked.outputs["pretrain_pod_gpus"], placement=checked, shard_cache=True)

            with dsl.ParallelFor(items=tasks, parallelism=settings.max_parallel_tasks, name="per-task") as task:
                tuned = finetune(task=task, shards=data.outputs["shards"], pretrained=trained.outputs["model"],
                                 steps=finetune_steps, batch_size=finetune_batch_size,
                                 nproc_per_node=gpus_per_node, config_overrides=finetune_overrides)
                tuned.set_display_name("finetune")
                on_gpu(tuned, settings, gpus_per_node)
                scored = evaluate(task=task, shards=data.outputs["shards"], model=tuned.outputs["model"])
                scored.set_display_name("evaluate").set_retry(settings.retries, backoff_duration="30s")
                on_gpu(scored, settings, 1)

            released = publish(model=trained.outputs["model"],
                               task_metrics=dsl.Collected(scored.outputs["metrics"]),
                               destination=output_root, model_name=model_name)
            # Every run publishes a new immutable version; a cached one would silently skip that.
            released.set_display_name("publish").set_caching_options(False).set_retry(
                settings.retries, backoff_duration="30s")
            on_cpu(released, settings)

    return full_pretrain_finetune


full_pretrain_finetune = build_pipeline(DeploymentSettings())

