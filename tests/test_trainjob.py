"""Multi-node pre-training as a Kubeflow Trainer TrainJob, against a fake Kubernetes API server.

The fake is a small HTTP server that the real `kubernetes` client talks to (through a kubeconfig
pointing at it). It implements only what the pretrain step uses: create/get/delete TrainJob, list
pods by label, read a pod's log, and plays a scripted life cycle for each TrainJob it is given.
"""

import json
import os
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jsonschema
import pytest
import yaml

from components import images
from components.runtime.trainjob import (
    QUEUE_LABEL,
    TrainJobError,
    TrainJobSpec,
    build_trainjob,
    connect,
    run_trainjob,
    train_as_trainjob,
    trainer_command,
    trainjob_name,
    workflow_owner,
)

WORKFLOW_OWNER = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "name": "x2vlm-run-abcde",
    "uid": "0b7c1a52-3f0e-4f7e-9d55-1f0e2a3b4c5d",
}
CRDS = Path(__file__).resolve().parents[1].parent / "shared" / "k8s"
TRAINJOBS = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs"
# A train image named by a (made-up) digest, as a pipeline compiled with images/digests.json passes it.
PINNED_TRAIN_IMAGE = images.tagged("train") + "@sha256:" + "5" * 64
NOW = "2026-01-01T00:00:00Z"


def _condition(kind, reason, message):
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": NOW}


CREATED = _condition("Created", "JobsCreationSucceeded", "succeeded to create Jobs")
RUNNING = {
    "conditions": [CREATED],
    "jobsStatus": [{"name": "node", "active": 1, "ready": 1, "succeeded": 0, "failed": 0, "suspended": 0}],
}
COMPLETE = {"conditions": [CREATED, _condition("Complete", "JobsCompleted", "jobset completed successfully")]}
FAILED = {
    "conditions": [
        CREATED,
        _condition("Failed", "FailedJobs", "jobset failed: node-0 exited with code 137 (OOMKilled)"),
    ]
}


class FakeCluster:
    """The Kubernetes API, as far as the pretrain step uses it. ``script``: the TrainJob status each
    successive read returns (the last one repeats); ``on_read(n)`` runs before the n-th read answers."""

    def __init__(self, script, on_read=None, on_complete=None):
        self.script, self.on_read, self.on_complete = script, on_read, on_complete
        self.jobs, self.reads, self.deleted, self.requests = {}, {}, [], []
        self.own_pods = {}  # name -> pod object, for GET /api/v1/namespaces/<ns>/pods/<name>
        self.log_lines = ["rank 0: step 1 loss 9.1", "rank 0: step 2 loss 8.7"]
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:  # the client was interrupted (the cancel test)
                    pass

            def do_POST(self):
                cluster.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = body["metadata"]["name"]
                if name in cluster.jobs:
                    return self._send(
                        409,
                        {
                            "kind": "Status",
                            "reason": "AlreadyExists",
                            "code": 409,
                            "message": f'trainjobs "{name}" already exists',
                        },
                    )
                body["metadata"].update(uid="uid-1", creationTimestamp=NOW)
                cluster.jobs[name], cluster.reads[name] = body, 0
                self._send(201, body)

            def do_GET(self):
                cluster.requests.append(("GET", self.path))
                url = urlparse(self.path)
                match = re.fullmatch(
                    r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainjobs/([^/]+)", url.path
                )
                if match:
                    return self._read_job(match.group(2))
                match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", url.path)
                if match:
                    selector = parse_qs(url.query)["labelSelector"][0]
                    name = selector.split("=", 1)[1]
                    return self._send(
                        200,
                        {
                            "kind": "PodList",
                            "apiVersion": "v1",
                            "metadata": {},
                            "items": cluster.pods(match.group(1), name),
                        },
                    )
                match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", url.path)
                if match and match.group(2) in cluster.own_pods:
                    return self._send(200, cluster.own_pods[match.group(2)])
                match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", url.path)
                if match:
                    assert parse_qs(url.query)["container"] == ["node"]
                    return self._send(200, "".join(line + "\n" for line in cluster.log_lines), "text/plain")
                self._send(404, {"kind": "Status", "code": 404, "message": f"no route {url.path}"})

            def _read_job(self, name):
                job = cluster.jobs.get(name)
                if job is None:
                    return self._send(
                        404,
                        {
                            "kind": "Status",
                            "code": 404,
                            "reason": "NotFound",
                            "message": f'trainjobs "{name}" not found',
                        },
                    )
                step = cluster.reads[name] = cluster.reads[name] + 1
                if cluster.on_read:
                    cluster.on_read(step)
                # A job seeded by a test keeps the status it was given; created ones follow the script.
                job["status"] = job.get("_status") or cluster.script[min(step, len(cluster.script)) - 1]
                if job["status"] is COMPLETE and cluster.on_complete and not job.get("_done"):
                    job["_done"] = True
                    cluster.on_complete(job)
                self._send(200, {k: v for k, v in job.items() if not k.startswith("_")})

            def do_DELETE(self):
                url = urlparse(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                cluster.requests.append(("DELETE", url.path, parse_qs(url.query).get("propagationPolicy")))
                name = urlparse(self.path).path.rsplit("/", 1)[1]
                cluster.deleted.append(name)
                job = cluster.jobs.pop(name, None)
                self._send(200 if job else 404, {"kind": "Status", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def pods(self, namespace, jobset):
        job = self.jobs.get(jobset)
        if job is None or not (job.get("status") or {}).get("conditions"):
            return []  # pending: the JobSet has no pods yet
        phase = {"Complete": "Succeeded", "Failed": "Failed"}.get(job["status"]["conditions"][-1]["type"], "Running")
        return [
            {
                "metadata": {
                    "name": f"{jobset}-node-0-{index}",
                    "namespace": namespace,
                    "creationTimestamp": NOW,
                    "labels": {
                        "jobset.sigs.k8s.io/jobset-name": jobset,
                        "jobset.sigs.k8s.io/replicatedjob-name": "node",
                        "jobset.sigs.k8s.io/job-index": "0",
                        "batch.kubernetes.io/job-completion-index": str(index),
                    },
                },
                "spec": {"containers": [{"name": "node", "image": job["spec"]["trainer"]["image"]}]},
                "status": {"phase": phase},
            }
            for index in range(job["spec"]["trainer"]["numNodes"])
        ]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """Point the real client at a fake cluster: ``kubeconfig(cluster)`` writes and selects its kubeconfig."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # never the in-cluster path

    def use(cluster):
        path = tmp_path / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": cluster.url}}],
                    "users": [{"name": "fake", "user": {"token": "test-token"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "x2vlm"}}
                    ],
                }
            )
        )
        monkeypatch.setenv("KUBECONFIG", str(path))
        return path

    return use


def _spec(**changes):
    values = dict(
        name=trainjob_name("x2vlm-pretrain", "0123456789"),
        namespace="x2vlm",
        image=images.TRAIN_IMAGE,
        command=trainer_command(
            ["pretrain", "--shards", "/gcs/data/shards", "--model", "x2vlm_base"],
            "/gcs/data/run/pretrain/model",
            ["train.steps=1000"],
        ),
        num_nodes=4,
        gpus_per_node=8,
        queue="x2vlm-gpu",
        service_account="x2vlm-trainer",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        gcs_buckets=["data"],
        shm_size="16Gi",
        env={"X2VLM_GIT_COMMIT": "abc123"},
        cpu="8",
        memory="64Gi",
        cpu_limit="24",
        memory_limit="160Gi",
        active_deadline_seconds=86400,
        owner=dict(WORKFLOW_OWNER),
    )
    values.update(changes)
    return TrainJobSpec(**values)


def test_trainjob_matches_the_crd_schema_and_carries_our_settings():
    crd_file = CRDS / "trainer.kubeflow.org_trainjobs.yaml"
    if not crd_file.is_file():
        pytest.skip(f"TrainJob CRD not found at {crd_file} (../shared/k8s is absent)")
    schema = yaml.safe_load(crd_file.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    body = build_trainjob(_spec())
    jsonschema.validate(body, schema)
    # The CRD's CEL rule on the name (jsonschema does not read x-kubernetes-validations).
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", body["metadata"]["name"]) and len(body["metadata"]["name"]) <= 63

    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and body["kind"] == "TrainJob"
    assert body["spec"]["runtimeRef"]["name"] == "x2vlm-torch-distributed"  # ours: restricted pods
    assert body["metadata"]["labels"][QUEUE_LABEL] == "x2vlm-gpu"
    trainer = body["spec"]["trainer"]
    assert trainer["image"] == images.TRAIN_IMAGE
    assert trainer["command"][:4] == ["torchrun", "-m", "x2vlm_core.cli", "pretrain"]
    assert trainer["command"][-4:] == ["--output", "/gcs/data/run/pretrain/model", "--set", "train.steps=1000"]
    assert trainer["numNodes"] == 4 and trainer["numProcPerNode"] == 8
    # resourcesPerNode replaces the runtime's resources whole: CPU and memory travel with the GPUs.
    assert trainer["resourcesPerNode"] == {
        "requests": {"nvidia.com/gpu": "8", "cpu": "8", "memory": "64Gi"},
        "limits": {"nvidia.com/gpu": "8", "cpu": "24", "memory": "160Gi"},
    }
    assert body["spec"]["activeDeadlineSeconds"] == 86400
    assert body["metadata"]["ownerReferences"] == [WORKFLOW_OWNER]
    assert {"name": "X2VLM_GIT_COMMIT", "value": "abc123"} in trainer["env"]
    (patch,) = body["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"gke-gcsfuse/volumes": "true"}
    assert pod["spec"]["serviceAccountName"] == "x2vlm-trainer"
    assert pod["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["gcs-data"]["csi"]["volumeAttributes"]["bucketName"] == "data"
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts == {"/dev/shm", "/gcs/data"}

    # Without a queue, GPUs or buckets those parts are left out, and it still validates.
    plain = build_trainjob(
        _spec(
            queue="",
            gpus_per_node=0,
            gcs_buckets=[],
            shm_size="",
            service_account="",
            node_selector={},
            tolerations=[],
            runtime="x2vlm-torch",
            cpu="",
            memory="",
            cpu_limit="",
            memory_limit="",
            active_deadline_seconds=0,
            owner={},
        )
    )
    jsonschema.validate(plain, schema)
    assert QUEUE_LABEL not in plain["metadata"]["labels"] and "runtimePatches" not in plain["spec"]
    assert "resourcesPerNode" not in plain["spec"]["trainer"] and plain["spec"]["trainer"]["numProcPerNode"] == 1
    assert plain["spec"]["runtimeRef"]["name"] == "x2vlm-torch"
    assert "activeDeadlineSeconds" not in plain["spec"] and "ownerReferences" not in plain["metadata"]


def test_bad_trainjob_settings_fail_with_a_clear_error():
    from x2vlm_core.errors import ConfigError

    with pytest.raises(ConfigError, match="num_nodes must be at least 1"):
        build_trainjob(_spec(num_nodes=0))
    with pytest.raises(ConfigError, match="RFC 1035"):
        build_trainjob(_spec(name="Bad_Name"))
    assert len(trainjob_name("x2vlm-" + "p" * 80, "abc")) <= 63
    assert trainjob_name("9-Pretrain", "ABC") == "pretrain-abc"


def test_trainjob_runs_to_success_streaming_status_and_leader_log(kubeconfig):
    lines = []
    with FakeCluster([{}, RUNNING, RUNNING, COMPLETE]) as cluster:
        kubeconfig(cluster)
        apis = connect()
        assert apis.namespace == "x2vlm"  # from the kubeconfig context
        body = build_trainjob(_spec(namespace=apis.namespace))
        final = run_trainjob(apis, body, poll_seconds=0.05, out=lines.append)
    name = body["metadata"]["name"]
    assert final["status"]["conditions"][-1]["type"] == "Complete"
    assert cluster.jobs[name]["spec"] == body["spec"]  # what was created is what we built
    assert any(line.startswith(f"created TrainJob x2vlm/{name}") for line in lines)
    states = [line.split(": ", 1)[1] for line in lines if line.startswith(f"TrainJob x2vlm/{name}:")]
    assert [s.split(" ")[0] for s in states] == ["Pending", "Running", "Complete"]
    leader = f"{name}-node-0-0"
    assert f"[{leader}] rank 0: step 2 loss 8.7" in lines
    assert not any("node-0-1]" in line for line in lines)  # only the leader's log is followed
    assert cluster.deleted == []


def test_failed_trainjob_fails_with_its_own_reason(kubeconfig):
    with FakeCluster([{}, RUNNING, FAILED]) as cluster:
        kubeconfig(cluster)
        apis = connect()
        with pytest.raises(TrainJobError) as failure:
            run_trainjob(
                apis, build_trainjob(_spec(namespace=apis.namespace)), poll_seconds=0.05, out=lambda line: None
            )
    message = str(failure.value)
    assert "failed: FailedJobs: jobset failed: node-0 exited with code 137 (OOMKilled)" in message
    assert cluster.deleted == []  # a failed job stays for `kubectl describe`


def test_cancelling_the_step_deletes_the_trainjob(kubeconfig):
    # KFP cancels a run by stopping its pods (SIGTERM); the fake sends it while the job is running.
    def terminate_on_third_read(n):
        if n == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    with FakeCluster([{}, RUNNING], on_read=terminate_on_third_read) as cluster:
        kubeconfig(cluster)
        apis = connect()
        body = build_trainjob(_spec(namespace=apis.namespace))
        with pytest.raises(KeyboardInterrupt):
            run_trainjob(apis, body, poll_seconds=0.05, out=lambda line: None)
    assert cluster.deleted == [body["metadata"]["name"]]
    # Foreground: the JobSet and its pods go before the TrainJob does.
    assert ("DELETE", f"{TRAINJOBS.format(ns='x2vlm')}/{body['metadata']['name']}", ["Foreground"]) in cluster.requests
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is put back


def test_a_restarted_step_follows_its_existing_trainjob(kubeconfig):
    with FakeCluster([RUNNING, COMPLETE]) as cluster:
        kubeconfig(cluster)
        apis = connect()
        body = build_trainjob(_spec(namespace=apis.namespace))
        cluster.jobs[body["metadata"]["name"]] = json.loads(json.dumps(body))
        cluster.reads[body["metadata"]["name"]] = 0
        lines = []
        run_trainjob(apis, body, poll_seconds=0.05, out=lines.append)
    assert any("exists already" in line for line in lines)


def test_a_retried_step_recreates_its_failed_trainjob(kubeconfig):
    """The step failed with its TrainJob (a lost node, the deadline); KFP retries the step with the same
    Model artifact, so the same TrainJob name: the failed job is deleted and created again, then followed."""
    with FakeCluster([{}, RUNNING, COMPLETE]) as cluster:
        kubeconfig(cluster)
        apis = connect()
        body = build_trainjob(_spec(namespace=apis.namespace))
        name = body["metadata"]["name"]
        stale = json.loads(json.dumps(body))
        stale["metadata"]["uid"], stale["_status"] = "uid-of-the-failed-one", FAILED
        cluster.jobs[name], cluster.reads[name] = stale, 0
        lines = []
        final = run_trainjob(apis, body, poll_seconds=0.05, out=lines.append)
    assert cluster.deleted == [name]
    delete = [r for r in cluster.requests if r[0] == "DELETE"]
    assert delete == [("DELETE", f"{TRAINJOBS.format(ns='x2vlm')}/{name}", ["Foreground"])]
    posts = [r for r in cluster.requests if r[0] == "POST"]
    assert len(posts) == 2  # the first create met the failed job (409), the second made the new one
    assert final["status"]["conditions"][-1]["type"] == "Complete" and cluster.jobs[name]["metadata"]["uid"] == "uid-1"
    assert any("failed before this attempt" in line and "OOMKilled" in line for line in lines)


def test_the_trainjob_is_owned_by_the_run_and_has_a_deadline(kubeconfig, monkeypatch, tmp_path):
    """train_as_trainjob as the pretrain component calls it: the owner comes from this step's own pod
    (Argo makes the Workflow its owner), the deadline, CPU and memory from the trainer pod settings."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "x2vlm-run-abcde-system-container-impl-123",
            "namespace": "x2vlm",
            "ownerReferences": [{**WORKFLOW_OWNER, "controller": True, "blockOwnerDeletion": True}],
        },
    }

    def trainers_write_the_summary(job):
        command = job["spec"]["trainer"]["command"]
        output = Path(command[command.index("--output") + 1])
        output.mkdir(parents=True, exist_ok=True)
        (output / "training.json").write_text(json.dumps({"steps": 1, "world_size": 16, "final": {}}))

    model = tmp_path / "model"
    monkeypatch.setenv("KFP_POD_NAME", pod["metadata"]["name"])
    monkeypatch.setenv("X2VLM_TRAINJOB_POLL_SECONDS", "0.05")
    with FakeCluster([{}, RUNNING, COMPLETE], on_complete=trainers_write_the_summary) as cluster:
        cluster.own_pods[pod["metadata"]["name"]] = pod
        kubeconfig(cluster)
        summary, ran_on = train_as_trainjob(
            ["pretrain", "--shards", str(tmp_path / "shards")],
            str(model),
            str(model),
            ["train.steps=1"],
            input_uris=[str(tmp_path / "shards")],
            num_nodes=2,
            gpus_per_node=8,
            pods={
                "cpu": "8",
                "memory": "64Gi",
                "cpu_limit": "24",
                "memory_limit": "160Gi",
                "active_deadline_seconds": 3600,
                "service_account": "x2vlm-trainer",
            },
            image=PINNED_TRAIN_IMAGE,
        )
        assert workflow_owner(connect(), "some-other-pod") == {}  # not a pod of a run: no owner
    (job,) = cluster.jobs.values()
    assert job["metadata"]["ownerReferences"] == [WORKFLOW_OWNER]  # not blocking: no workflows/finalizers grant
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["runtimeRef"]["name"] == "x2vlm-torch-distributed"
    assert job["spec"]["trainer"]["resourcesPerNode"]["requests"] == {
        "nvidia.com/gpu": "8",
        "cpu": "8",
        "memory": "64Gi",
    }
    assert summary["world_size"] == 16 and ran_on["owner"] == WORKFLOW_OWNER["name"]
    # The nodes run the image the pipeline passed (by digest), and the model's metadata says so.
    assert job["spec"]["trainer"]["image"] == ran_on["image"] == PINNED_TRAIN_IMAGE


def test_unreachable_cluster_gives_one_line(kubeconfig):
    with FakeCluster([{}]) as cluster:
        kubeconfig(cluster)
    apis = connect()  # the server is gone now
    with pytest.raises(TrainJobError, match="cannot reach the Kubernetes API"):
        run_trainjob(apis, build_trainjob(_spec(namespace=apis.namespace)), poll_seconds=0.05)


@pytest.mark.pipeline
@pytest.mark.slow
def test_pretrain_component_runs_multi_node_as_a_trainjob(tmp_path, kubeconfig, monkeypatch):
    """The pretrain component, run by kfp.local with num_nodes=2: the fake cluster plays the trainers
    (it writes the model folder where the TrainJob's command says) and the Model carries the outcome.
    The shards are a manifest naming a data root that does not exist: the submitting pod never reads them."""
    import kfp.local
    from kfp import dsl
    from kfp.dsl import Dataset

    from components.pretrain import pretrain

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "index.json").write_text(
        json.dumps(
            {
                "total": 8,
                "datasets": {
                    "pretrain_image_text": {
                        "train": {
                            "count": 8,
                            "shards": [{"path": "train-00000.tar", "count": 8, "bytes": 1, "sha256": "0" * 64}],
                        }
                    }
                },
            }
        )
    )
    (shards / "location.json").write_text(json.dumps({"uri": str(tmp_path / "data-root-only-trainers-reach")}))

    def trainers_write_the_model(job):
        command = job["spec"]["trainer"]["command"]
        output = Path(command[command.index("--output") + 1])
        output.mkdir(parents=True, exist_ok=True)
        (output / "training.json").write_text(
            json.dumps(
                {
                    "steps": 3,
                    "world_size": 16,
                    "seconds": 1.5,
                    "resumed_from_step": 0,
                    "final": {"loss": 4.25, "step": 3},
                    "history": [{"loss": 4.25, "step": 3}],
                }
            )
        )

    @dsl.pipeline(name="pretrain-on-trainjob")
    def one_step(shards_uri: str):
        data = dsl.importer(artifact_uri=shards_uri, artifact_class=Dataset)
        pretrain(
            shards=data.output,
            model_preset="x2vlm_tiny",
            steps=3,
            num_nodes=2,
            gpus_per_node=8,
            kueue_queue="x2vlm-gpu",
            checkpoint_root="gs://b/ckpt",
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )

    monkeypatch.setenv("X2VLM_TRAINJOB_POLL_SECONDS", "0.1")
    monkeypatch.setenv("X2VLM_GIT_COMMIT", "feedbeef")
    with FakeCluster([{}, RUNNING, COMPLETE], on_complete=trainers_write_the_model) as cluster:
        kubeconfig(cluster)
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        one_step(shards_uri=str(shards))
    (job,) = cluster.jobs.values()
    assert job["metadata"]["labels"][QUEUE_LABEL] == "x2vlm-gpu"
    assert job["spec"]["trainer"]["numNodes"] == 2
    (output,) = list((tmp_path / "root").glob("*/pretrain/executor_output.json"))
    (model,) = json.loads(output.read_text())["artifacts"]["model"]["artifacts"]
    meta = model["metadata"]
    assert meta["ran_on"]["trainjob"] == job["metadata"]["name"] and meta["ran_on"]["num_nodes"] == 2
    assert meta["world_size"] == 16 and meta["final_loss"] == 4.25 and "history" not in meta["training"]
    assert meta["code_version"] == "feedbeef"
    assert meta["inputs"] == {"shards": str(shards)} and meta["data"]["shards"] == 1
    command = job["spec"]["trainer"]["command"]
    assert command[command.index("--output") + 1] == model["uri"]
    # Every trainer keeps its checkpoints under the root, scoped by the pipeline run's id.
    run_id = command[command.index("--run-id") + 1]
    assert command[command.index("--checkpoint-root") + 1] == "gs://b/ckpt" and run_id and "{{" not in run_id
    assert meta["checkpoint_root"] == "gs://b/ckpt"
