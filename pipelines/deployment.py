"""How the pipelines' pods land on the cluster: GPU node pool, tolerations, GPU limits, /dev/shm,
shard-cache PVC, image pull policy, the trainer pods' service account, fan-out width.

These are compile-time settings (kfp-kubernetes writes them into the IR's platform spec):
the defaults below, or a YAML file given to `python -m pipelines compile --settings FILE`.
The service account of the pipeline's own pods is a run setting in KFP v2
(`python -m pipelines run --service-account ...`), not part of the compiled spec.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from kfp import kubernetes

from components.runtime.trainjob import check_trainer_account
from x2vlm_core.config_io import from_dict, load_yaml

# The KFP launcher stages a gs://BUCKET/... artifact at /gcs/BUCKET/... in the pod.
KFP_GCS_STAGING = "/gcs"


@dataclass
class DeploymentSettings:
    # GKE labels its GPU nodes with the accelerator type; tolerate the taint GPU pools carry.
    gpu_node_selector: dict[str, str] = field(
        default_factory=lambda: {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"})
    gpu_tolerations: list[dict[str, Any]] = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    accelerator: str = "nvidia.com/gpu"
    # DataLoader workers and NCCL exchange tensors through /dev/shm; the container default is 64 MiB.
    shm_size: str = "16Gi"
    # An existing PersistentVolumeClaim mounted where the launcher stages downloaded artifacts, so the
    # shards the single-instance data and pretrain steps read sit on it rather than on the node's boot
    # disk. Empty: none. (Not on the per-task branches: they would write the same files at once.)
    shard_cache_pvc: str = ""
    image_pull_policy: str = "IfNotPresent"
    # Service account of the TrainJob's trainer pods (manifests/: x2vlm-trainer, GCS through Workload Identity).
    trainer_service_account: str = "x2vlm-trainer"
    # How many task branches (fine-tune + evaluate) run at once.
    max_parallel_tasks: int = 4
    # Retries of the steps that are safe to repeat (data preparation, evaluation, publishing).
    retries: int = 2


def load_settings(path: Optional[str]) -> DeploymentSettings:
    """The defaults, or a YAML file of overrides (unknown keys fail with the valid ones)."""
    settings = from_dict(DeploymentSettings, load_yaml(path) if path else {}, where=path or "deployment settings")
    check_trainer_account(settings.trainer_service_account)  # refused at compile time, not only when it runs
    return settings


def trainer_pods(settings: DeploymentSettings) -> dict[str, Any]:
    """The pretrain component's `trainer_pods` input: placement and identity of the TrainJob's pods."""
    return {"service_account": settings.trainer_service_account, "node_selector": dict(settings.gpu_node_selector),
            "tolerations": [dict(t) for t in settings.gpu_tolerations], "shm_size": settings.shm_size}


def on_cpu(task, settings: DeploymentSettings, shard_cache: bool = False):
    kubernetes.set_image_pull_policy(task, settings.image_pull_policy)
    if shard_cache and settings.shard_cache_pvc:
        kubernetes.mount_pvc(task, pvc_name=settings.shard_cache_pvc, mount_path=KFP_GCS_STAGING)
    return task


def on_gpu(task, settings: DeploymentSettings, gpus, placement=None, shard_cache: bool = False):
    """GPU limits, node pool and tolerations, memory-backed /dev/shm. ``placement``: a task whose outputs
    `pretrain_pod_node_selector` / `pretrain_pod_tolerations` decide the node pool at run time."""
    on_cpu(task, settings, shard_cache)
    task.set_accelerator_type(settings.accelerator).set_accelerator_limit(gpus)
    if placement is None:
        for key, value in settings.gpu_node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for toleration in settings.gpu_tolerations:
            kubernetes.add_toleration_json(task, toleration)
    else:
        kubernetes.add_node_selector_json(task, placement.outputs["pretrain_pod_node_selector"])
        kubernetes.add_toleration_json(task, placement.outputs["pretrain_pod_tolerations"])
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=settings.shm_size)
    return task
