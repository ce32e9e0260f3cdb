"""The compiled KFP IR of both pipelines: DAG edges, the fan-out, caching and retries, the run form's
parameters, the typed artifacts, the images, and the Kubernetes platform spec from kfp-kubernetes."""

import pytest
import yaml
from kfp import compiler

from components import images
from pipelines import full_pretrain_finetune as full
from pipelines import single_task_finetune as single
from pipelines.deployment import DeploymentSettings, load_settings

GPU_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _compile(tmp_path, module, settings=None):
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(module.build_pipeline(settings or DeploymentSettings()), package_path=str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="module")
def full_ir(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("full"), full)


@pytest.fixture(scope="module")
def single_ir(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("single"), single)


def test_full_dag_runs_every_stage_inside_an_exit_handler(full_ir):
    spec, _ = full_ir
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "record-run-status"}
    exit_task = root["record-run-status"]
    assert exit_task["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert exit_task["inputs"]["parameters"]["status"]["taskFinalStatus"]["producerTask"] == "exit-handler-1"
    assert exit_task["inputs"]["parameters"]["output_root"]["componentInputParameter"] == "output_root"

    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert set(body) == {"validate-full-run", "prepare-data", "pretrain", "for-loop-2", "publish"}
    assert "dependentTasks" not in body["validate-full-run"]  # the checks run first
    assert body["prepare-data"]["dependentTasks"] == ["validate-full-run"]
    assert set(body["pretrain"]["dependentTasks"]) == {"prepare-data", "validate-full-run"}
    assert body["pretrain"]["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == "prepare-data"

    loop = body["for-loop-2"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--tasks"
    assert loop["iteratorPolicy"]["parallelismLimit"] == DeploymentSettings().max_parallel_tasks
    inner = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]
    assert set(inner) == {"finetune", "evaluate"}
    # The loop receives the pretrained model from pretrain and hands it to every finetune.
    assert inner["finetune"]["inputs"]["artifacts"]["pretrained"]["componentInputArtifact"] == "pipelinechannel--pretrain-model"
    assert loop["inputs"]["artifacts"]["pipelinechannel--pretrain-model"]["taskOutputArtifact"]["producerTask"] == "pretrain"
    assert inner["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "finetune"

    publish = body["publish"]
    assert publish["inputs"]["artifacts"]["task_metrics"]["taskOutputArtifact"]["producerTask"] == "for-loop-2"
    assert publish["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "pretrain"
    assert publish["inputs"]["parameters"]["destination"]["componentInputParameter"] == "pipelinechannel--output_root"


def test_caching_and_retries_only_where_safe(full_ir):
    spec, _ = full_ir
    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    inner = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]
    tasks = {**body, **inner, "record-run-status": spec["root"]["dag"]["tasks"]["record-run-status"]}
    # prepare-data is cached, keyed on its inputs (sources, shard size, image side).
    assert tasks["prepare-data"]["cachingOptions"] == {"enableCache": True}
    assert set(tasks["prepare-data"]["inputs"]["parameters"]) >= {"sources", "shard_size", "max_image_side"}
    for never_cached in ("publish", "validate-full-run", "record-run-status"):
        assert not tasks[never_cached]["cachingOptions"].get("enableCache"), never_cached
    retried = {name for name, task in tasks.items() if task.get("retryPolicy")}
    assert retried == {"prepare-data", "evaluate", "publish"}
    assert tasks["prepare-data"]["retryPolicy"]["maxRetryCount"] == DeploymentSettings().retries


def test_run_form_parameters_have_defaults_and_descriptions(full_ir, single_ir):
    params = full_ir[0]["root"]["inputDefinitions"]["parameters"]
    assert {"sources", "output_root", "model_preset", "pretrain_steps", "finetune_steps", "tasks", "num_nodes",
            "gpus_per_node", "trainjob_runtime", "kueue_queue"} <= set(params)
    assert params["sources"]["parameterType"] == "STRING" and "defaultValue" not in params["sources"]
    assert params["model_preset"]["defaultValue"] == "x2vlm_base"
    assert params["tasks"]["defaultValue"] == full.DEFAULT_TASKS
    assert params["num_nodes"]["defaultValue"] == 1 and params["gpus_per_node"]["defaultValue"] == 1
    assert params["trainjob_runtime"]["defaultValue"] == "torch-distributed"
    assert params["output_root"]["defaultValue"].startswith("gs://")
    # The UI shows these descriptions in the run form; they come from the docstring's Args.
    assert all(p.get("description") for p in params.values()), [n for n, p in params.items() if not p.get("description")]
    assert "TrainJob" in params["num_nodes"]["description"]

    params = single_ir[0]["root"]["inputDefinitions"]["parameters"]
    assert {n for n, p in params.items() if "defaultValue" not in p} == {"task", "base_model_uri", "shards_uri"}
    assert params["learning_rate"]["defaultValue"] == 1e-4
    # Empty dataset and no shots: the task's own dataset, an ordinary fine-tune.
    assert params["dataset"]["defaultValue"] == "" and params["dataset"]["parameterType"] == "STRING"
    assert params["few_shot"]["defaultValue"] == 0 and params["few_shot"]["parameterType"] == "NUMBER_INTEGER"
    assert "xgqa" in params["dataset"]["description"] and "few_shot split" in params["few_shot"]["description"]
    assert all(p.get("description") for p in params.values())


def test_components_take_dataset_few_shot_and_splits_with_the_task_defaults(full_ir):
    comps = full_ir[0]["components"]
    finetune = comps["comp-finetune"]["inputDefinitions"]["parameters"]
    assert {n: finetune[n]["defaultValue"] for n in ("dataset", "few_shot", "languages")} == {
        "dataset": "", "few_shot": 0, "languages": []}
    evaluate = comps["comp-evaluate"]["inputDefinitions"]["parameters"]
    assert {n: evaluate[n]["defaultValue"] for n in ("dataset", "splits")} == {"dataset": "", "splits": []}
    # The full pipeline's tasks each train and score on their own dataset.
    inner = full_ir[0]["components"]["comp-for-loop-2"]["dag"]["tasks"]
    assert not {"dataset", "few_shot", "languages"} & set(inner["finetune"]["inputs"]["parameters"])
    assert not {"dataset", "splits"} & set(inner["evaluate"]["inputs"]["parameters"])


def test_artifacts_are_typed(full_ir):
    comps = full_ir[0]["components"]
    assert comps["comp-prepare-data"]["outputDefinitions"]["artifacts"]["shards"]["artifactType"]["schemaTitle"] == "system.Dataset"
    assert comps["comp-pretrain"]["outputDefinitions"]["artifacts"]["model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert comps["comp-evaluate"]["outputDefinitions"]["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert comps["comp-publish"]["inputDefinitions"]["artifacts"]["task_metrics"]["isArtifactList"] is True
    assert comps["comp-record-run-status"]["inputDefinitions"]["parameters"]["status"]["parameterType"] == "TASK_FINAL_STATUS"


def test_every_executor_runs_one_of_our_images(full_ir, single_ir):
    ours = {images.TRAIN_IMAGE, images.BEAM_IMAGE, images.PUBLISH_IMAGE}
    for spec, _ in (full_ir, single_ir):
        executors = spec["deploymentSpec"]["executors"]
        used = {e["container"]["image"] for e in executors.values() if "container" in e}
        assert used <= ours
        assert all(image.endswith(":" + images.TAG) for image in used)
    assert len(full_ir[0]["deploymentSpec"]["executors"]) == 7


def _gpu_pod(executors, spec, name, count):
    resources = spec["deploymentSpec"]["executors"][name]["container"]["resources"]["accelerator"]
    assert resources["resourceType"] == "nvidia.com/gpu" and resources["resourceCount"] == count
    k8s = executors[name]
    assert k8s["emptyDirMounts"] == [{"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "16Gi",
                                      "volumeName": "dshm"}]
    assert k8s["imagePullPolicy"] == "IfNotPresent"
    return k8s


def test_kubernetes_settings_of_the_full_pipeline(full_ir):
    spec, executors = full_ir
    for name in ("exec-finetune", "exec-evaluate"):
        count = "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}" if name == "exec-finetune" else "1"
        k8s = _gpu_pod(executors, spec, name, count)
        assert k8s["nodeSelector"] == {"labels": GPU_SELECTOR}
        assert k8s["tolerations"] == [GPU_TOLERATION]
    # The pretrain pod's GPUs and node pool come from the checks step: none when a TrainJob trains.
    k8s = _gpu_pod(executors, spec, "exec-pretrain",
                   "{{$.inputs.parameters['pipelinechannel--validate-full-run-pretrain_pod_gpus']}}")
    placement = {"producerTask": "validate-full-run"}
    assert k8s["nodeSelector"]["nodeSelectorJson"]["taskOutputParameter"] == {
        **placement, "outputParameterKey": "pretrain_pod_node_selector"}
    assert k8s["tolerations"][0]["tolerationJson"]["taskOutputParameter"] == {
        **placement, "outputParameterKey": "pretrain_pod_tolerations"}
    for cpu in ("exec-prepare-data", "exec-publish", "exec-validate-full-run", "exec-record-run-status"):
        assert executors[cpu] == {"imagePullPolicy": "IfNotPresent"}, cpu
        assert "resources" not in spec["deploymentSpec"]["executors"][cpu]["container"]
    # The TrainJob's pods get the same placement and identity, through the pretrain component.
    pods = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["pretrain"]["inputs"]["parameters"]["trainer_pods"]
    assert pods["runtimeValue"]["constant"] == {"service_account": "x2vlm-trainer", "node_selector": GPU_SELECTOR,
                                                "tolerations": [GPU_TOLERATION], "shm_size": "16Gi"}


def test_shard_cache_pvc_and_other_settings_from_a_file(tmp_path):
    settings_file = tmp_path / "deploy.yaml"
    settings_file.write_text(yaml.safe_dump({
        "shard_cache_pvc": "x2vlm-shard-cache", "image_pull_policy": "Always", "max_parallel_tasks": 2,
        "gpu_node_selector": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}}))
    spec, executors = _compile(tmp_path, full, load_settings(str(settings_file)))
    mounted = {name for name, k8s in executors.items() if "pvcMount" in k8s}
    assert mounted == {"exec-prepare-data", "exec-pretrain"}
    (mount,) = executors["exec-pretrain"]["pvcMount"]
    assert mount["mountPath"] == "/gcs" and mount["pvcNameParameter"]["runtimeValue"]["constant"] == "x2vlm-shard-cache"
    assert {k8s["imagePullPolicy"] for k8s in executors.values()} == {"Always"}
    assert executors["exec-finetune"]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}
    loop = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["for-loop-2"]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2

    _, default_executors = _compile(tmp_path, full)
    assert not any("pvcMount" in k8s for k8s in default_executors.values())

    settings_file.write_text("shard_cache_pvcs: typo\n")
    from x2vlm_core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key.*shard_cache_pvc"):
        load_settings(str(settings_file))


def test_single_task_pipeline_checks_inputs_before_anything_runs(single_ir):
    spec, executors = single_ir
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"validate-finetune-request", "importer", "importer-2", "finetune", "evaluate"}
    assert "dependentTasks" not in tasks["validate-finetune-request"]
    assert tasks["importer"]["dependentTasks"] == ["validate-finetune-request"]
    assert tasks["importer"]["inputs"]["parameters"]["uri"]["componentInputParameter"] == "base_model_uri"
    assert tasks["importer-2"]["inputs"]["parameters"]["uri"]["componentInputParameter"] == "shards_uri"
    finetune = tasks["finetune"]["inputs"]
    assert finetune["artifacts"]["pretrained"]["taskOutputArtifact"]["producerTask"] == "importer"
    # The hyper-parameters reach training only as the checks step's output.
    assert finetune["parameters"]["config_overrides"]["taskOutputParameter"] == {
        "producerTask": "validate-finetune-request", "outputParameterKey": "config_overrides"}
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "finetune"
    # One dataset for both steps; the shots only for training.
    for name in ("dataset", "few_shot"):
        assert finetune["parameters"][name] == {"componentInputParameter": name}
    assert tasks["evaluate"]["inputs"]["parameters"]["dataset"] == {"componentInputParameter": "dataset"}
    assert not tasks["validate-finetune-request"]["cachingOptions"].get("enableCache")
    assert tasks["evaluate"]["retryPolicy"]["maxRetryCount"] == DeploymentSettings().retries
    k8s = _gpu_pod(executors, spec, "exec-finetune", "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}")
    assert k8s["nodeSelector"] == {"labels": GPU_SELECTOR} and k8s["tolerations"] == [GPU_TOLERATION]
    assert executors["exec-validate-finetune-request"] == {"imagePullPolicy": "IfNotPresent"}
