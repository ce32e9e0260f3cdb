"""How the pipelines' pods land on the cluster: identity (non-root uid), CPU and memory, time limits,
GPU node pool, tolerations, GPU limits, /dev/shm, shard-cache PVC, image pull policy, the trainer
pods' service account, fan-out width.

These are compile-time settings (kfp-kubernetes writes them into the IR's platform spec):
the defaults below, or a YAML file given to `python -m pipelines compile --settings FILE`.
The service account of the pipeline's own pods is a run setting in KFP v2
(`python -m pipelines run --service-account ...`), not part of the compiled spec.
"""

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from kfp import kubernetes

from components.runtime.trainjob import check_trainer_account
from x2vlm_core.config_io import from_dict, load_yaml
from x2vlm_core.errors import ConfigError

# Every step's pod: the uid/gid the images run as (images/*/Dockerfile), so Pod Security
# "restricted" admits it (KFP 2.17 sets runAsNonRoot on its own driver pods, not on step pods).
IMAGE_UID = 10001

# The steps, by the resources they need (DeploymentSettings.resources keys).
STEP_KINDS = ("light", "prepare-data", "pretrain", "finetune", "evaluate", "publish")
GPU_STEPS = ("pretrain", "finetune", "evaluate")


@dataclass
class PodResources:
    """CPU and memory of one step's container (Kubernetes quantities). A GPU step's memory limit also
    holds its memory-backed /dev/shm."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


def _default_resources() -> dict[str, PodResources]:
    return {
        # validate-inputs, record-run-status, the release gate: read a few small files.
        "light": PodResources("250m", "1", "1Gi", "2Gi"),
        # The Beam job on the DirectRunner (a Dataflow/Flink runner does the work elsewhere).
        "prepare-data": PodResources("4", "8", "16Gi", "32Gi"),
        # One node's training (or, with num_nodes > 1, the pod that follows the TrainJob).
        "pretrain": PodResources("8", "24", "64Gi", "160Gi"),
        "finetune": PodResources("8", "24", "64Gi", "160Gi"),
        "evaluate": PodResources("4", "12", "32Gi", "64Gi"),
        # Loads the weights once and writes safetensors shards.
        "publish": PodResources("2", "4", "8Gi", "16Gi"),
    }


def _default_timeouts() -> dict[str, int]:
    # Seconds a GPU step's pod may run (its activeDeadlineSeconds), so a hung step frees its GPUs.
    return {"pretrain": 14 * 86400, "finetune": 2 * 86400, "evaluate": 12 * 3600}


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str, where: str) -> float:
    """A Kubernetes quantity (``500m``, ``16Gi``) as a number."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise ConfigError(f"{where} {value!r} is not a Kubernetes quantity such as 500m, 4 or 16Gi")
    return float(match.group(1)) * _FACTORS[match.group(2)]


# The KFP launcher stages a gs://BUCKET/... artifact at /gcs/BUCKET/... in the pod.
KFP_GCS_STAGING = "/gcs"


@dataclass
class DeploymentSettings:
    # GKE labels its GPU nodes with the accelerator type; tolerate the taint GPU pools carry.
    gpu_node_selector: dict[str, str] = field(
        default_factory=lambda: {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    )
    gpu_tolerations: list[dict[str, Any]] = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
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
    # Retries of the steps that are safe to repeat: data preparation, evaluation, publishing, and
    # training, which resumes from the checkpoints in its Model artifact (a retry keeps the URI).
    retries: int = 2
    # Identity of every step's container; the images run as this uid (Pod Security "restricted").
    run_as_user: int = IMAGE_UID
    run_as_group: int = IMAGE_UID
    # CPU and memory requests and limits per kind of step (keys: STEP_KINDS).
    resources: dict[str, PodResources] = field(default_factory=_default_resources)
    # Time limit (seconds) of each GPU step's pod (keys: GPU_STEPS).
    timeouts: dict[str, int] = field(default_factory=_default_timeouts)
    # False on a cluster without GPUs (pipelines/settings/local.yaml, for the `local` overlay): the
    # training and evaluation steps ask for no GPU and run DeepSpeed on CPU.
    use_gpus: bool = True
    # activeDeadlineSeconds of a multi-node pre-training TrainJob; the pretrain pod's own timeout
    # must be longer, so that the TrainJob's deadline, with its reason, ends the step first.
    trainjob_deadline_seconds: int = 13 * 86400

    def __post_init__(self) -> None:
        resources = dict(self.resources)
        unknown = sorted(set(resources) - set(STEP_KINDS))
        if unknown:
            raise ConfigError(
                f"unknown step kind(s) {unknown} in deployment settings resources; "
                f"valid kinds are: {', '.join(STEP_KINDS)}"
            )
        self.resources = {**_default_resources(), **{k: _resources(v, k) for k, v in resources.items()}}
        unknown = sorted(set(self.timeouts) - set(GPU_STEPS))
        if unknown:
            raise ConfigError(
                f"unknown step(s) {unknown} in deployment settings timeouts; valid steps are: {', '.join(GPU_STEPS)}"
            )
        self.timeouts = {**_default_timeouts(), **self.timeouts}
        for kind, res in self.resources.items():
            where = f"deployment settings resources.{kind}"
            for what in ("cpu", "memory"):
                request = quantity(getattr(res, f"{what}_request"), f"{where}.{what}_request")
                limit = quantity(getattr(res, f"{what}_limit"), f"{where}.{what}_limit")
                if request <= 0 or limit < request:
                    raise ConfigError(
                        f"{where}: {what} request must be > 0 and at most the limit, got "
                        f"{getattr(res, f'{what}_request')} / {getattr(res, f'{what}_limit')}"
                    )
        shm = quantity(self.shm_size, "deployment settings shm_size")
        for kind in GPU_STEPS:
            if quantity(self.resources[kind].memory_limit, kind) <= shm:
                raise ConfigError(
                    f"deployment settings resources.{kind}.memory_limit "
                    f"{self.resources[kind].memory_limit} must exceed shm_size {self.shm_size}: "
                    "the memory-backed /dev/shm counts against it"
                )
        for step, seconds in self.timeouts.items():
            if not isinstance(seconds, int) or seconds < 1:
                raise ConfigError(
                    f"deployment settings timeouts.{step} must be a whole number of seconds ≥ 1, got {seconds!r}"
                )
        if self.trainjob_deadline_seconds < 1 or self.trainjob_deadline_seconds >= self.timeouts["pretrain"]:
            raise ConfigError(
                f"deployment settings trainjob_deadline_seconds ({self.trainjob_deadline_seconds}) "
                f"must be ≥ 1 and below timeouts.pretrain ({self.timeouts['pretrain']})"
            )


def _resources(value: Any, kind: str) -> PodResources:
    if isinstance(value, PodResources):
        return value
    return from_dict(PodResources, value, where=f"deployment settings resources.{kind}")


def load_settings(path: Optional[str]) -> DeploymentSettings:
    """The defaults, or a YAML file of overrides (unknown keys fail with the valid ones)."""
    settings = from_dict(DeploymentSettings, load_yaml(path) if path else {}, where=path or "deployment settings")
    check_trainer_account(settings.trainer_service_account)  # refused at compile time, not only when it runs
    return settings


def trainer_pods(settings: DeploymentSettings) -> dict[str, Any]:
    """The pretrain component's `trainer_pods` input: placement and identity of the TrainJob's pods."""
    train = settings.resources["pretrain"]
    return {
        "service_account": settings.trainer_service_account,
        "node_selector": dict(settings.gpu_node_selector),
        "tolerations": [dict(t) for t in settings.gpu_tolerations],
        "shm_size": settings.shm_size,
        "cpu": train.cpu_request,
        "memory": train.memory_request,
        "cpu_limit": train.cpu_limit,
        "memory_limit": train.memory_limit,
        "active_deadline_seconds": settings.trainjob_deadline_seconds,
    }


def _admit(task, settings: DeploymentSettings, kind: str):
    """Non-root identity, CPU and memory: what every step's pod needs to be admitted and scheduled."""
    kubernetes.set_security_context(
        task, run_as_user=settings.run_as_user, run_as_group=settings.run_as_group, run_as_non_root=True
    )
    res = settings.resources[kind]
    task.set_cpu_request(res.cpu_request).set_cpu_limit(res.cpu_limit)
    task.set_memory_request(res.memory_request).set_memory_limit(res.memory_limit)
    kubernetes.set_image_pull_policy(task, settings.image_pull_policy)
    return task


def on_cpu(task, settings: DeploymentSettings, kind: str = "light", shard_cache: bool = False):
    """A CPU step of ``kind`` (a STEP_KINDS key)."""
    _admit(task, settings, kind)
    if shard_cache and settings.shard_cache_pvc:
        kubernetes.mount_pvc(task, pvc_name=settings.shard_cache_pvc, mount_path=KFP_GCS_STAGING)
    return task


def release_step(task, name: str, settings: DeploymentSettings, kind: str):
    """A gate or publish step: never from a cache (it decides on, and writes, the releases as they are
    now; a cached publish would silently skip a new version), retried, on CPU."""
    task.set_display_name(name).set_caching_options(False).set_retry(settings.retries, backoff_duration="30s")
    return on_cpu(task, settings, kind)


def pod_resources(settings: DeploymentSettings) -> dict[str, dict[str, str]]:
    """validate-full-run's `pod_resources` input: each kind's CPU and memory, for the pod it places at run time."""
    return {kind: asdict(res) for kind, res in settings.resources.items()}


def on_gpu(task, settings: DeploymentSettings, kind: str, gpus, placement=None, shard_cache: bool = False):
    """A GPU step of ``kind`` (pretrain, finetune, evaluate): its time limit, GPU limits, node pool and
    tolerations, memory-backed /dev/shm. ``placement``: a task whose outputs `pretrain_pod_node_selector`,
    `pretrain_pod_tolerations` and `pretrain_pod_{cpu,memory}_{request,limit}` decide the node pool and
    the pod's size at run time (a pod that only follows a multi-node TrainJob needs little)."""
    on_cpu(task, settings, kind, shard_cache)
    if placement is not None:
        out = placement.outputs
        task.set_cpu_request(out["pretrain_pod_cpu_request"]).set_cpu_limit(out["pretrain_pod_cpu_limit"])
        task.set_memory_request(out["pretrain_pod_memory_request"]).set_memory_limit(out["pretrain_pod_memory_limit"])
    kubernetes.set_timeout(task, settings.timeouts[kind])
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=settings.shm_size
    )
    if not settings.use_gpus:  # no GPU, no GPU node pool: DeepSpeed and torch on CPU
        task.set_env_variable("DS_ACCELERATOR", "cpu")
        return task
    task.set_accelerator_type(settings.accelerator).set_accelerator_limit(gpus)
    if placement is None:
        for key, value in settings.gpu_node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for toleration in settings.gpu_tolerations:
            kubernetes.add_toleration_json(task, toleration)
    else:
        kubernetes.add_node_selector_json(task, placement.outputs["pretrain_pod_node_selector"])
        kubernetes.add_toleration_json(task, placement.outputs["pretrain_pod_tolerations"])
    return task
