"""Multi-node training as a Kubeflow Trainer v2 TrainJob: build it, submit it, follow it to its end.

The pretrain component uses this when ``num_nodes > 1``: its own pod only submits the TrainJob
(``trainer.kubeflow.org/v1alpha1``, by default on our runtime ``x2vlm-torch-distributed``, whose pods
Pod Security "restricted" admits) through the ``kubernetes`` client, streams the job's status and its
leader pod's log, and ends with the job's outcome. Cancelling the pipeline run (SIGTERM to the pod)
deletes the TrainJob; the TrainJob is also owned by the run's Argo Workflow, so deleting the run
(or a killed step) leaves no orphan. The TrainJob has a deadline (``activeDeadlineSeconds``). A
retried step that finds its TrainJob Failed deletes it and creates it again: training resumes from
the checkpoints in the Model artifact.

The trainer pods see the artifacts at the paths the KFP launcher uses (``/gcs/<bucket>/...``
for ``gs://<bucket>/...``): each bucket is mounted there through the GKE Cloud Storage FUSE
CSI driver, so ``x2vlm pretrain --output <model.path>`` writes straight to the Model artifact.
``X2VLM_TRAINJOB_POLL_SECONDS`` (default 10) sets how often the job's status is read.
"""

import hashlib
import json
import os
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from components.images import TRAIN_IMAGE
from x2vlm_core import storage
from x2vlm_core.config_io import from_dict
from x2vlm_core.errors import ConfigError, X2VLMError, shown
from x2vlm_core.release.lineage import CODE_VERSION_ENV, code_version

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
DEFAULT_RUNTIME = "x2vlm-torch-distributed"  # manifests/base/cluster/runtime
# The torch runtimes name their replicated job and its container "node".
TRAINER_JOB = "node"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PATCH_MANAGER = "x2vlm.platform/pretrain"
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
KFP_GCS_MOUNT = "/gcs"  # where the KFP launcher puts gs://bucket/... as local paths
LEADER_LABELS = {
    "jobset.sigs.k8s.io/replicatedjob-name": TRAINER_JOB,
    "jobset.sigs.k8s.io/job-index": "0",
    "batch.kubernetes.io/job-completion-index": "0",
}
IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
POLL_SECONDS_ENV = "X2VLM_TRAINJOB_POLL_SECONDS"
POD_NAME_ENV = "KFP_POD_NAME"  # the KFP compiler sets it on every step pod (downward API)
WORKFLOW_KIND, WORKFLOW_API = "Workflow", "argoproj.io/v1alpha1"
DELETE_WAIT_SECONDS = 300
_NAME_RULE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# The accounts trainer pods may run as. They parse downloaded data, so never an account with API
# rights (x2vlm-pipeline may create TrainJobs); "" keeps the training runtime's own (x2vlm-trainer).
TRAINER_SERVICE_ACCOUNTS = ("", "x2vlm-trainer")


class TrainJobError(X2VLMError):
    """The TrainJob could not be created, failed, or could not be followed."""


@dataclass
class TrainJobSpec:
    """Everything that decides the TrainJob; ``build_trainjob`` turns it into the object."""

    name: str
    namespace: str
    image: str
    command: list[str]
    num_nodes: int
    gpus_per_node: int
    runtime: str = DEFAULT_RUNTIME
    queue: str = ""  # Kueue LocalQueue; empty: not queued through Kueue
    service_account: str = ""  # trainer pods' account (GCS access through Workload Identity)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    gcs_buckets: list[str] = field(default_factory=list)  # mounted at /gcs/<bucket>
    shm_size: str = ""  # memory-backed /dev/shm for NCCL and data-loader workers
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # Per-node CPU and memory: resourcesPerNode replaces the runtime's container resources whole
    # (Trainer v2.2 pkg/runtime/core/trainingruntime.go), so they are given with the GPUs.
    cpu: str = ""
    memory: str = ""
    cpu_limit: str = ""
    memory_limit: str = ""
    active_deadline_seconds: int = 0  # 0: none
    owner: dict[str, Any] = field(default_factory=dict)  # ownerReference (the run's Argo Workflow)


def trainjob_name(prefix: str, unique: str) -> str:
    """An RFC 1035 name of at most 63 characters (the CRD's rule): ``<prefix>-<unique>``."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{unique}".lower()).strip("-")
    cleaned = re.sub(r"^[^a-z]+", "", cleaned)
    return cleaned[:63].rstrip("-") or "x2vlm-trainjob"


def trainer_command(cli_args: list[str], output_dir: str, overrides: list[str]) -> list[str]:
    """``torchrun -m x2vlm_core.cli <cli_args> --output DIR --set ...``.

    The torch runtime gives torchrun the node count, rank and rendezvous through its ``PET_*``
    variables; torchrun hands the standard ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` to each rank.
    """
    command = ["torchrun", "-m", "x2vlm_core.cli", *cli_args, "--output", output_dir]
    for item in overrides:
        command += ["--set", str(item)]
    return command


def check_trainer_account(name: str) -> None:
    if name not in TRAINER_SERVICE_ACCOUNTS:
        raise ConfigError(
            f"trainer service account {shown(name)} is not one of {list(TRAINER_SERVICE_ACCOUNTS)}: the "
            "trainer pods read untrusted data and must not hold an account with API rights; to use "
            "another, check its Role and add it to TRAINER_SERVICE_ACCOUNTS in components/runtime/trainjob.py"
        )


def _check(spec: TrainJobSpec) -> None:
    check_trainer_account(spec.service_account)
    if not _NAME_RULE.match(spec.name) or len(spec.name) > 63:
        raise ConfigError(f"TrainJob name {spec.name!r} is not an RFC 1035 label of at most 63 characters")
    if spec.num_nodes < 1:
        raise ConfigError(f"num_nodes must be at least 1, got {spec.num_nodes}")
    if spec.gpus_per_node < 0:
        raise ConfigError(f"gpus_per_node must be 0 or more, got {spec.gpus_per_node}")
    if not spec.runtime:
        raise ConfigError("the TrainJob runtime name is empty; use our ClusterTrainingRuntime x2vlm-torch-distributed")
    if spec.active_deadline_seconds < 0:
        raise ConfigError(f"the TrainJob deadline must be ≥ 1 second (or 0: none), got {spec.active_deadline_seconds}")


def build_trainjob(spec: TrainJobSpec) -> dict[str, Any]:
    """The TrainJob object (it validates against the Trainer v2 CRD's openAPIV3Schema)."""
    _check(spec)
    labels = {"app.kubernetes.io/part-of": "x2vlm", **spec.labels}
    if spec.queue:
        labels[QUEUE_LABEL] = spec.queue
    trainer: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "numNodes": spec.num_nodes,
        "numProcPerNode": max(spec.gpus_per_node, 1),  # CPU-only nodes still run one process
    }
    if spec.env:
        trainer["env"] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    resources = _resources_per_node(spec)
    if resources:
        trainer["resourcesPerNode"] = resources
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": spec.runtime},
            "trainer": trainer,
        },
    }
    if spec.owner:
        body["metadata"]["ownerReferences"] = [dict(spec.owner)]
    if spec.active_deadline_seconds:
        body["spec"]["activeDeadlineSeconds"] = spec.active_deadline_seconds
    pod_patch = _pod_patch(spec)
    if pod_patch:
        body["spec"]["runtimePatches"] = [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [{"name": TRAINER_JOB, "template": {"spec": {"template": pod_patch}}}]
                        }
                    }
                },
            }
        ]
    return body


def _resources_per_node(spec: TrainJobSpec) -> dict[str, Any]:
    """GPUs (request = limit), CPU and memory of each node's trainer container."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.gpus_per_node:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(spec.gpus_per_node)
    for name, request, limit in (("cpu", spec.cpu, spec.cpu_limit), ("memory", spec.memory, spec.memory_limit)):
        if request:
            requests[name] = request
        if limit or request:
            limits[name] = limit or request
    out = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _pod_patch(spec: TrainJobSpec) -> dict[str, Any]:
    """Pod-template patch for the trainer pods: placement, identity, shared memory and bucket mounts."""
    pod: dict[str, Any] = {}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    if spec.shm_size:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for bucket in sorted(set(spec.gcs_buckets)):
        volume = f"gcs-{re.sub(r'[^a-z0-9-]', '-', bucket.lower())}"[:63].rstrip("-")
        volumes.append(
            {
                "name": volume,
                "csi": {
                    "driver": GCSFUSE_DRIVER,
                    "volumeAttributes": {"bucketName": bucket, "mountOptions": "implicit-dirs"},
                },
            }
        )
        mounts.append({"name": volume, "mountPath": f"{KFP_GCS_MOUNT}/{bucket}"})
    if volumes:
        pod["volumes"] = volumes
        pod["containers"] = [{"name": TRAINER_JOB, "volumeMounts": mounts}]
    patch: dict[str, Any] = {}
    if spec.gcs_buckets:
        patch["metadata"] = {"annotations": {"gke-gcsfuse/volumes": "true"}}
    if pod:
        patch["spec"] = pod
    return patch


# --------------------------------------------------------------------------------------------
# Talking to the cluster


@dataclass
class KubeApis:
    custom: Any  # kubernetes.client.CustomObjectsApi
    core: Any  # kubernetes.client.CoreV1Api
    namespace: str  # where this pod runs (or the kubeconfig context's namespace)


def connect() -> KubeApis:
    """In-cluster credentials in a pod; otherwise the kubeconfig (``KUBECONFIG`` or ~/.kube/config)."""
    namespace = ""
    try:
        config.load_incluster_config()
        with open(IN_CLUSTER_NAMESPACE_FILE) as f:
            namespace = f.read().strip()
    except (config.ConfigException, OSError):
        # Read KUBECONFIG now: the client's own default is frozen when it is first imported.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=kubeconfig)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            namespace = (active or {}).get("context", {}).get("namespace", "")
        except (config.ConfigException, OSError, TypeError) as error:
            raise TrainJobError(
                f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({error}); "
                "run inside the cluster or set KUBECONFIG"
            ) from None
    return KubeApis(client.CustomObjectsApi(), client.CoreV1Api(), namespace or "default")


def _api_error(action: str, error: Exception) -> TrainJobError:
    if isinstance(error, ApiException):
        try:
            detail = json.loads(error.body or "{}").get("message") or error.reason
        except (TypeError, ValueError):
            detail = error.reason
        hint = {
            403: "; grant the pipeline's service account RBAC on trainjobs.trainer.kubeflow.org (see manifests/)",
            404: "; is Kubeflow Trainer v2 (the TrainJob CRD) installed in this cluster?",
        }.get(error.status, "")
        return TrainJobError(f"{action}: HTTP {error.status}: {detail}{hint}")
    return TrainJobError(f"{action}: cannot reach the Kubernetes API ({type(error).__name__}: {error})".splitlines()[0])


def create_trainjob(apis: KubeApis, body: dict[str, Any]) -> bool:
    """Create the TrainJob; False when one of that name exists already (a restarted step re-attaches to it)."""
    namespace = body["metadata"]["namespace"]
    try:
        apis.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        return True
    except ApiException as error:
        if error.status == 409:
            return False
        raise _api_error(f"creating TrainJob {namespace}/{body['metadata']['name']}", error) from None
    except Exception as error:
        raise _api_error(f"creating TrainJob {namespace}/{body['metadata']['name']}", error) from None


def get_trainjob(apis: KubeApis, namespace: str, name: str) -> dict[str, Any]:
    try:
        return apis.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as error:
        raise _api_error(f"reading TrainJob {namespace}/{name}", error) from None


def delete_trainjob(apis: KubeApis, namespace: str, name: str) -> None:
    """Delete the TrainJob and, in the foreground, its JobSet and pods."""
    try:
        apis.custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, propagation_policy="Foreground"
        )
    except ApiException as error:
        if error.status != 404:  # already gone is what we want
            raise _api_error(f"deleting TrainJob {namespace}/{name}", error) from None


def workflow_owner(apis: KubeApis, pod_name: Optional[str] = None) -> dict[str, Any]:
    """An ownerReference to the Argo Workflow that owns this step's pod, so that deleting the run (or
    Argo's garbage collection) deletes the TrainJob too; {} when not in such a pod. Not blocking the
    owner's deletion: that would need `update` on workflows/finalizers, which the runner lacks."""
    pod_name = pod_name or os.environ.get(POD_NAME_ENV) or os.environ.get("HOSTNAME", "")
    if not pod_name:
        return {}
    try:
        pod = apis.core.read_namespaced_pod(pod_name, apis.namespace)
    except ApiException as error:
        if error.status in (403, 404):  # not a pod of this cluster (a local run), or no `get pods`
            return {}
        raise _api_error(f"reading this step's pod {apis.namespace}/{pod_name}", error) from None
    except Exception as error:
        raise _api_error(f"reading this step's pod {apis.namespace}/{pod_name}", error) from None
    for ref in pod.metadata.owner_references or []:
        if ref.kind == WORKFLOW_KIND and ref.api_version == WORKFLOW_API:
            return {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name, "uid": ref.uid}
    return {}


def wait_until_deleted(
    apis: KubeApis, namespace: str, name: str, timeout: float = DELETE_WAIT_SECONDS, poll_seconds: float = 2.0
) -> None:
    """Wait for a foreground deletion to finish (its JobSet and pods go first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            apis.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return
            raise _api_error(f"reading TrainJob {namespace}/{name}", error) from None
        except Exception as error:
            raise _api_error(f"reading TrainJob {namespace}/{name}", error) from None
        if time.monotonic() > deadline:
            raise TrainJobError(
                f"TrainJob {namespace}/{name} was deleted but is still there after {timeout:.0f} s; "
                f"check its finalizers: kubectl -n {namespace} get trainjob {name} -o yaml"
            )
        time.sleep(poll_seconds)


@dataclass(frozen=True)
class TrainJobState:
    phase: str  # Pending, Running, Suspended, Complete, Failed
    reason: str = ""
    message: str = ""

    def describe(self) -> str:
        detail = ": ".join(p for p in (self.reason, self.message) if p)
        return f"{self.phase} ({detail})" if detail else self.phase


def trainjob_state(obj: dict[str, Any]) -> TrainJobState:
    """The job's phase from its status conditions (Complete/Failed/Suspended) and child-job counts."""
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    for phase in ("Failed", "Complete", "Suspended"):
        if phase in conditions:
            return TrainJobState(phase, conditions[phase].get("reason", ""), conditions[phase].get("message", ""))
    jobs = status.get("jobsStatus") or []
    if any(j.get("active") or j.get("ready") for j in jobs):
        ready = sum(j.get("ready", 0) for j in jobs)
        return TrainJobState("Running", message=f"{ready} of {len(jobs)} job(s) ready")
    return TrainJobState("Pending")


def leader_pod(apis: KubeApis, namespace: str, name: str) -> Optional[Any]:
    """The rank-0 pod of the trainer (newest first, so a restarted leader is followed)."""
    selector = f"jobset.sigs.k8s.io/jobset-name={name}"
    try:
        pods = apis.core.list_namespaced_pod(namespace, label_selector=selector).items
    except Exception as error:
        raise _api_error(f"listing the pods of TrainJob {namespace}/{name}", error) from None
    leaders = [p for p in pods if all((p.metadata.labels or {}).get(k) == v for k, v in LEADER_LABELS.items())]
    leaders.sort(key=lambda p: (p.metadata.creation_timestamp is not None, p.metadata.creation_timestamp), reverse=True)
    return leaders[0] if leaders else None


class LogFollower:
    """Streams one pod's log to ``out`` on a background thread, line by line."""

    def __init__(self, apis: KubeApis, namespace: str, pod: str, out: Callable[[str], None]):
        self.pod = pod
        self._thread = threading.Thread(target=self._run, args=(apis, namespace, pod, out), daemon=True)
        self._thread.start()

    @staticmethod
    def _run(apis: KubeApis, namespace: str, pod: str, out: Callable[[str], None]) -> None:
        try:
            response = apis.core.read_namespaced_pod_log(
                pod, namespace, container=TRAINER_JOB, follow=True, _preload_content=False
            )
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    out(f"[{pod}] {line.decode('utf-8', 'replace')}")
            if pending:
                out(f"[{pod}] {pending.decode('utf-8', 'replace')}")
        except Exception as error:  # the log is a convenience; the job's status decides the outcome
            out(f"[{pod}] log stream ended: {type(error).__name__}: {error}".splitlines()[0])

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _print(line: str) -> None:
    print(line, flush=True)


def follow_trainjob(
    apis: KubeApis, namespace: str, name: str, poll_seconds: float = 10.0, out: Callable[[str], None] = _print
) -> dict[str, Any]:
    """Wait for the TrainJob to finish; print its status changes and its leader's log. Returns the object."""
    last: Optional[TrainJobState] = None
    follower: Optional[LogFollower] = None
    while True:
        obj = get_trainjob(apis, namespace, name)
        state = trainjob_state(obj)
        if state != last:
            out(f"TrainJob {namespace}/{name}: {state.describe()}")
            last = state
        pod = leader_pod(apis, namespace, name)
        if (
            pod is not None
            and (follower is None or follower.pod != pod.metadata.name)
            and pod.status is not None
            and pod.status.phase in ("Running", "Succeeded", "Failed")
        ):
            follower = LogFollower(apis, namespace, pod.metadata.name, out)
        if state.phase in ("Complete", "Failed"):
            if follower is not None:
                follower.join(timeout=30)  # let the last lines of the log arrive
            if state.phase == "Failed":
                raise TrainJobError(
                    f"TrainJob {namespace}/{name} failed: {state.reason or 'no reason given'}"
                    + (f": {state.message}" if state.message else "")
                    + f"; kubectl -n {namespace} describe trainjob {name}"
                )
            return obj
        time.sleep(poll_seconds)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Kubernetes stops a cancelled run's pod with SIGTERM: raise KeyboardInterrupt so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_trainjob(
    apis: KubeApis, body: dict[str, Any], poll_seconds: float = 10.0, out: Callable[[str], None] = _print
) -> dict[str, Any]:
    """Create the TrainJob and follow it to its end; on cancel (SIGTERM, Ctrl-C) delete it and re-raise."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    created = (
        f"created TrainJob {namespace}/{name} (runtime {body['spec']['runtimeRef']['name']}, "
        f"{body['spec']['trainer']['numNodes']} nodes)"
    )
    with sigterm_as_interrupt():
        if create_trainjob(apis, body):
            out(created)
        else:
            state = trainjob_state(get_trainjob(apis, namespace, name))
            if state.phase == "Failed":
                # A retry of this step: the job failed before (a node lost, the deadline, a crash). Start it
                # again under the same name; training resumes from the checkpoints in the Model artifact.
                out(
                    f"TrainJob {namespace}/{name} failed before this attempt ({state.describe()}): "
                    "deleting it and creating it again"
                )
                delete_trainjob(apis, namespace, name)
                wait_until_deleted(apis, namespace, name, poll_seconds=min(poll_seconds, 2.0))
                if not create_trainjob(apis, body):
                    raise TrainJobError(
                        f"TrainJob {namespace}/{name} reappeared while it was being created again; "
                        "another attempt of this step may be running"
                    )
                out(created)
            else:
                out(f"TrainJob {namespace}/{name} exists already (this step was restarted): following it")
        try:
            return follow_trainjob(apis, namespace, name, poll_seconds, out)
        except (KeyboardInterrupt, SystemExit):
            out(f"cancelled: deleting TrainJob {namespace}/{name}")
            delete_trainjob(apis, namespace, name)
            raise


def gcs_buckets(*uris: str) -> list[str]:
    """The buckets behind the given artifact URIs (local URIs need no mount)."""
    return sorted({storage.parse_gcs(uri)[0] for uri in uris if storage.is_gcs(uri)})


@dataclass
class TrainerPods:
    """Cluster settings for the trainer pods, passed to the pretrain component as a dict."""

    service_account: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    shm_size: str = ""
    cpu: str = ""
    memory: str = ""
    cpu_limit: str = ""
    memory_limit: str = ""
    active_deadline_seconds: int = 0


def train_as_trainjob(
    cli_args: list[str],
    model_uri: str,
    model_path: str,
    overrides: list[str],
    *,
    input_uris: list[str],
    num_nodes: int,
    gpus_per_node: int,
    runtime: str = DEFAULT_RUNTIME,
    queue: str = "",
    pods: Optional[dict[str, Any]] = None,
    image: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``x2vlm <cli_args>`` on ``num_nodes`` nodes as a TrainJob that writes the model folder to the Model
    artifact (``model_path`` in the trainer pods is ``model_uri``). Returns (training.json, where it ran).

    ``image``: the trainer nodes' image; empty for the train image's tag. The pipeline passes the
    reference it was compiled with (by digest where one was recorded), which the image that runs this
    step cannot know of itself."""
    settings = from_dict(TrainerPods, pods or {}, where="trainer pod settings")
    check_trainer_account(settings.service_account)  # before anything reaches the cluster
    apis = connect()
    # One name per Model artifact: a restarted step finds its TrainJob again instead of starting another.
    unique = hashlib.sha1(model_uri.encode()).hexdigest()[:10]
    spec = TrainJobSpec(
        name=trainjob_name("x2vlm-" + cli_args[0], unique),
        namespace=apis.namespace,
        image=image or TRAIN_IMAGE,
        command=trainer_command(cli_args, model_path, overrides),
        num_nodes=num_nodes,
        gpus_per_node=gpus_per_node,
        runtime=runtime,
        queue=queue,
        service_account=settings.service_account,
        node_selector=settings.node_selector,
        tolerations=settings.tolerations,
        shm_size=settings.shm_size,
        gcs_buckets=gcs_buckets(model_uri, *input_uris),
        env={CODE_VERSION_ENV: code_version()},
        cpu=settings.cpu,
        memory=settings.memory,
        cpu_limit=settings.cpu_limit,
        memory_limit=settings.memory_limit,
        active_deadline_seconds=settings.active_deadline_seconds,
        owner=workflow_owner(apis),
    )
    run_trainjob(apis, build_trainjob(spec), float(os.environ.get(POLL_SECONDS_ENV, "10")))
    # The trainers wrote the files at model_uri; the KFP launcher uploads this pod's (empty) folder,
    # which must exist, and leaves the files in place.
    os.makedirs(model_path, exist_ok=True)
    summary_uri = storage.join(model_uri, "training.json")
    if not storage.exists(summary_uri):
        raise TrainJobError(
            f"TrainJob {spec.namespace}/{spec.name} completed but {summary_uri} is missing; "
            "check that its pods mount the artifact bucket (GCS FUSE CSI driver enabled?)"
        )
    ran_on = {
        "trainjob": spec.name,
        "namespace": spec.namespace,
        "runtime": runtime,
        "num_nodes": num_nodes,
        "gpus_per_node": gpus_per_node,
        "queue": queue,
        "owner": spec.owner.get("name", ""),
        "image": spec.image,
    }
    return json.loads(storage.read_bytes(summary_uri)), ran_on
