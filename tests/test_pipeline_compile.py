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
    assert set(body) == {
        "validate-full-run",
        "prepare-data",
        "pretrain",
        "finetune-and-evaluate",
        "release-gate",
        "condition-2",
    }
    assert "dependentTasks" not in body["validate-full-run"]  # the checks run first
    assert body["prepare-data"]["dependentTasks"] == ["validate-full-run"]
    assert set(body["pretrain"]["dependentTasks"]) == {"prepare-data", "validate-full-run"}
    assert body["pretrain"]["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == "prepare-data"

    # The fan-out is a nested pipeline returning the collected task models and metrics.
    fan = body["finetune-and-evaluate"]["inputs"]["artifacts"]
    assert fan["pretrained"]["taskOutputArtifact"]["producerTask"] == "pretrain"
    nested = spec["components"]["comp-finetune-and-evaluate"]["dag"]
    loop = nested["tasks"]["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--tasks"
    assert loop["iteratorPolicy"]["parallelismLimit"] == DeploymentSettings().max_parallel_tasks
    assert {name: out["artifactSelectors"] for name, out in nested["outputs"]["artifacts"].items()} == {
        "models": [{"outputArtifactKey": "pipelinechannel--finetune-model", "producerSubtask": "for-loop-1"}],
        "metrics": [{"outputArtifactKey": "pipelinechannel--evaluate-metrics", "producerSubtask": "for-loop-1"}],
    }
    inner = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert set(inner) == {"finetune", "evaluate"}
    assert (
        inner["finetune"]["inputs"]["artifacts"]["pretrained"]["componentInputArtifact"]
        == "pipelinechannel--pretrained"
    )
    assert inner["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "finetune"
    # evaluate keeps its predictions as an artifact of their own.
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert set(outputs) == {"metrics", "report", "predictions"}


def _gate_condition(spec, body, condition):
    """The condition of a dsl.If group: the gate's `publish` output must be true."""
    trigger = body[condition]["triggerPolicy"]["condition"]
    assert trigger == "inputs.parameter_values['pipelinechannel--release-gate-Output'] == true", trigger
    assert body[condition]["inputs"]["parameters"]["pipelinechannel--release-gate-Output"]["taskOutputParameter"] == {
        "producerTask": "release-gate",
        "outputParameterKey": "Output",
    }
    return spec["components"][f"comp-{condition}"]["dag"]["tasks"]


def test_nothing_is_published_unless_the_metrics_pass_the_gate(full_ir):
    spec, _ = full_ir
    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    gate = body["release-gate"]
    assert gate["inputs"]["artifacts"]["task_metrics"]["taskOutputArtifact"] == {
        "producerTask": "finetune-and-evaluate",
        "outputArtifactKey": "metrics",
    }
    params = gate["inputs"]["parameters"]
    assert {
        name: params[name]["componentInputParameter"]
        for name in ("min_metrics", "compare_to_latest", "max_regression", "destination", "release_name")
    } == {
        "min_metrics": "pipelinechannel--min_metrics",
        "compare_to_latest": "pipelinechannel--compare_to_latest",
        "max_regression": "pipelinechannel--max_regression",
        "destination": "pipelinechannel--output_root",
        "release_name": "pipelinechannel--model_name",
    }
    assert not gate["cachingOptions"].get("enableCache")
    # Both publishing steps sit in the gate's condition, and only there.
    published = _gate_condition(spec, body, "condition-2")
    assert set(published) == {"publish", "publish-task-models"}
    assert not {"publish", "publish-task-models"} & set(body)
    assert (
        published["publish"]["inputs"]["artifacts"]["model"]["componentInputArtifact"]
        == "pipelinechannel--pretrain-model"
    )
    task_models = published["publish-task-models"]["inputs"]
    assert (
        task_models["artifacts"]["models"]["componentInputArtifact"] == "pipelinechannel--finetune-and-evaluate-models"
    )
    # Task releases name the pre-trained release as their parent, and share its version.
    assert {name: task_models["parameters"][name]["taskOutputParameter"] for name in ("parent_release", "version")} == {
        "parent_release": {"producerTask": "publish", "outputParameterKey": "release_uri"},
        "version": {"producerTask": "publish", "outputParameterKey": "version"},
    }
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["min_metrics"]["defaultValue"] == {} and params["compare_to_latest"]["defaultValue"] is True
    assert params["max_regression"]["defaultValue"] == 0.0


def test_the_single_task_pipeline_publishes_only_when_asked_and_through_the_gate(single_ir):
    spec, _ = single_ir
    tasks = spec["root"]["dag"]["tasks"]
    requested = tasks["condition-1"]
    assert requested["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--publish_to'] != ''"
    inside = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inside) == {"task-release-gate", "condition-2"}
    gate = inside["task-release-gate"]
    assert gate["inputs"]["artifacts"]["metrics"]["componentInputArtifact"] == "pipelinechannel--evaluate-metrics"
    condition = inside["condition-2"]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--task-release-gate-Output'] == true"
    (publish,) = spec["components"]["comp-condition-2"]["dag"]["tasks"].values()
    assert publish["componentRef"]["name"] == "comp-publish-task-model"
    assert (
        publish["inputs"]["parameters"]["base_model_uri"]["componentInputParameter"]
        == "pipelinechannel--base_model_uri"
    )
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["publish_to"]["defaultValue"] == "" and params["model_name"]["defaultValue"] == "x2vlm"


def _all_tasks(spec) -> dict:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_caching_and_retries_only_where_safe(full_ir, single_ir):
    spec, _ = full_ir
    tasks = _all_tasks(spec)
    # prepare-data is cached, keyed on its inputs (sources, snapshot, shard size, image side).
    assert tasks["prepare-data"]["cachingOptions"] == {"enableCache": True}
    assert set(tasks["prepare-data"]["inputs"]["parameters"]) >= {"sources", "snapshot", "shard_size", "max_image_side"}
    assert (
        tasks["prepare-data"]["inputs"]["parameters"]["snapshot"]["componentInputParameter"]
        == "pipelinechannel--data_snapshot"
    )
    for never_cached in ("publish", "publish-task-models", "release-gate", "validate-full-run", "record-run-status"):
        assert not tasks[never_cached]["cachingOptions"].get("enableCache"), never_cached
    # Every container step but the checks and the exit task is retried: training resumes or restarts
    # on the same Model artifact, the rest is idempotent or publishes immutable versions.
    retried = {name for name, task in tasks.items() if task.get("retryPolicy")}
    assert retried == {
        "prepare-data",
        "pretrain",
        "finetune",
        "evaluate",
        "release-gate",
        "publish",
        "publish-task-models",
    }
    assert {tasks[name]["retryPolicy"]["maxRetryCount"] for name in retried} == {DeploymentSettings().retries}
    single = _all_tasks(single_ir[0])
    assert {name for name, task in single.items() if task.get("retryPolicy")} == {
        "finetune",
        "evaluate",
        "task-release-gate",
        "publish-task-model",
    }


def test_run_form_parameters_have_defaults_and_descriptions(full_ir, single_ir):
    params = full_ir[0]["root"]["inputDefinitions"]["parameters"]
    assert {
        "sources",
        "output_root",
        "model_preset",
        "pretrain_steps",
        "finetune_steps",
        "tasks",
        "num_nodes",
        "gpus_per_node",
        "trainjob_runtime",
        "kueue_queue",
    } <= set(params)
    assert params["sources"]["parameterType"] == "STRING" and "defaultValue" not in params["sources"]
    assert params["model_preset"]["defaultValue"] == "x2vlm_base"
    assert params["tasks"]["defaultValue"] == full.DEFAULT_TASKS
    assert params["num_nodes"]["defaultValue"] == 1 and params["gpus_per_node"]["defaultValue"] == 1
    assert params["trainjob_runtime"]["defaultValue"] == "x2vlm-torch-distributed"  # ours: restricted pods
    assert "global" in params["pretrain_batch_size"]["description"] and "per process" not in str(params)
    assert params["output_root"]["defaultValue"].startswith("gs://")
    # The UI shows these descriptions in the run form; they come from the docstring's Args.
    assert all(p.get("description") for p in params.values()), [
        n for n, p in params.items() if not p.get("description")
    ]
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
        "dataset": "",
        "few_shot": 0,
        "languages": [],
    }
    evaluate = comps["comp-evaluate"]["inputDefinitions"]["parameters"]
    assert {n: evaluate[n]["defaultValue"] for n in ("dataset", "splits")} == {"dataset": "", "splits": []}
    # The full pipeline's tasks each train and score on their own dataset.
    inner = full_ir[0]["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert not {"dataset", "few_shot", "languages"} & set(inner["finetune"]["inputs"]["parameters"])
    assert not {"dataset", "splits"} & set(inner["evaluate"]["inputs"]["parameters"])


def test_artifacts_are_typed(full_ir):
    comps = full_ir[0]["components"]
    assert (
        comps["comp-prepare-data"]["outputDefinitions"]["artifacts"]["shards"]["artifactType"]["schemaTitle"]
        == "system.Dataset"
    )
    assert (
        comps["comp-pretrain"]["outputDefinitions"]["artifacts"]["model"]["artifactType"]["schemaTitle"]
        == "system.Model"
    )
    assert (
        comps["comp-evaluate"]["outputDefinitions"]["artifacts"]["metrics"]["artifactType"]["schemaTitle"]
        == "system.Metrics"
    )
    assert comps["comp-publish"]["inputDefinitions"]["artifacts"]["task_metrics"]["isArtifactList"] is True
    assert (
        comps["comp-record-run-status"]["inputDefinitions"]["parameters"]["status"]["parameterType"]
        == "TASK_FINAL_STATUS"
    )


def test_every_executor_runs_one_of_our_images(full_ir, single_ir):
    ours = {images.TRAIN_IMAGE, images.BEAM_IMAGE, images.PUBLISH_IMAGE}
    for spec, _ in (full_ir, single_ir):
        executors = spec["deploymentSpec"]["executors"]
        used = {e["container"]["image"] for e in executors.values() if "container" in e}
        assert used <= ours
        assert all(image.split("@")[0].endswith(":" + images.TAG) for image in used)
    assert len(full_ir[0]["deploymentSpec"]["executors"]) == 9


def _gpu_pod(executors, spec, name, count):
    resources = spec["deploymentSpec"]["executors"][name]["container"]["resources"]["accelerator"]
    assert resources["resourceType"] == "nvidia.com/gpu" and resources["resourceCount"] == count
    k8s = executors[name]
    assert k8s["emptyDirMounts"] == [
        {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "16Gi", "volumeName": "dshm"}
    ]
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
    k8s = _gpu_pod(
        executors,
        spec,
        "exec-pretrain",
        "{{$.inputs.parameters['pipelinechannel--validate-full-run-pretrain_pod_gpus']}}",
    )
    placement = {"producerTask": "validate-full-run"}
    # Its CPU and memory too: a pod that only follows a multi-node TrainJob gets the light size.
    resources = spec["deploymentSpec"]["executors"]["exec-pretrain"]["container"]["resources"]
    for key, output in (
        ("resourceCpuRequest", "cpu_request"),
        ("resourceCpuLimit", "cpu_limit"),
        ("resourceMemoryRequest", "memory_request"),
        ("resourceMemoryLimit", "memory_limit"),
    ):
        assert (
            resources[key] == f"{{{{$.inputs.parameters['pipelinechannel--validate-full-run-pretrain_pod_{output}']}}}}"
        )
    assert "memoryLimit" not in resources  # no compile-time size left to contradict the run-time one
    assert k8s["nodeSelector"]["nodeSelectorJson"]["taskOutputParameter"] == {
        **placement,
        "outputParameterKey": "pretrain_pod_node_selector",
    }
    assert k8s["tolerations"][0]["tolerationJson"]["taskOutputParameter"] == {
        **placement,
        "outputParameterKey": "pretrain_pod_tolerations",
    }
    for cpu in ("exec-prepare-data", "exec-publish", "exec-validate-full-run", "exec-record-run-status"):
        assert set(executors[cpu]) == {"imagePullPolicy", "securityContext"}, cpu
        assert "accelerator" not in spec["deploymentSpec"]["executors"][cpu]["container"]["resources"]
    # The TrainJob's pods get the same placement and identity, through the pretrain component, with
    # the pretrain step's CPU and memory (resourcesPerNode replaces the runtime's) and a deadline.
    pods = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["pretrain"]["inputs"]["parameters"]["trainer_pods"]
    train = DeploymentSettings().resources["pretrain"]
    assert pods["runtimeValue"]["constant"] == {
        "service_account": "x2vlm-trainer",
        "node_selector": GPU_SELECTOR,
        "tolerations": [GPU_TOLERATION],
        "shm_size": "16Gi",
        "cpu": train.cpu_request,
        "memory": train.memory_request,
        "cpu_limit": train.cpu_limit,
        "memory_limit": train.memory_limit,
        "active_deadline_seconds": DeploymentSettings().trainjob_deadline_seconds,
    }
    # The step that follows the TrainJob outlives the TrainJob's own deadline, whose reason it reports.
    assert int(executors["exec-pretrain"]["activeDeadlineSeconds"]) > DeploymentSettings().trainjob_deadline_seconds


@pytest.mark.parametrize("which", ["full", "single"])
def test_every_executor_is_admitted_sized_and_gpu_steps_time_out(full_ir, single_ir, which):
    """Pod Security "restricted" needs runAsNonRoot (KFP 2.17 sets it on its drivers, not on step pods);
    CPU and memory requests keep the pods out of BestEffort; a GPU step that hangs is stopped."""
    spec, executors = full_ir if which == "full" else single_ir
    containers = {name: e["container"] for name, e in spec["deploymentSpec"]["executors"].items() if "container" in e}
    assert containers and set(containers) <= set(executors)  # the importers are KFP's own pods
    settings = DeploymentSettings()
    for name, container in containers.items():
        k8s = executors[name]
        assert k8s["securityContext"] == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}, name
        resources = container["resources"]
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert resources.get(key), (name, key)
        if "accelerator" in resources:
            kind = name.removeprefix("exec-")
            assert int(k8s["activeDeadlineSeconds"]) == settings.timeouts[kind], name
            # /dev/shm is memory: the limit must hold it and the process (pretrain's is set at run time, below).
            if name != "exec-pretrain":
                assert resources["memoryLimit"] * 1e9 > 16 * 2**30, name
        else:
            assert "activeDeadlineSeconds" not in k8s, name


def test_bad_deployment_settings_fail_with_one_line(tmp_path):
    from x2vlm_core.errors import ConfigError

    cases = {
        "resources.evaluate.memory_limit 8Gi must exceed shm_size 16Gi": {
            "resources": {
                "evaluate": {"cpu_request": "1", "cpu_limit": "2", "memory_request": "4Gi", "memory_limit": "8Gi"}
            }
        },
        "unknown step kind\\(s\\) \\['train'\\]": {"resources": {"train": {}}},
        "cpu request must be > 0 and at most the limit": {
            "resources": {
                "light": {"cpu_request": "2", "cpu_limit": "1", "memory_request": "1Gi", "memory_limit": "1Gi"}
            }
        },
        "'lots' is not a Kubernetes quantity": {
            "resources": {
                "light": {"cpu_request": "lots", "cpu_limit": "1", "memory_request": "1Gi", "memory_limit": "1Gi"}
            }
        },
        "trainjob_deadline_seconds .* below timeouts.pretrain": {"trainjob_deadline_seconds": 10**8},
        "unknown step\\(s\\) \\['publish'\\] in deployment settings timeouts": {"timeouts": {"publish": 60}},
    }
    for message, values in cases.items():
        path = tmp_path / "settings.yaml"
        path.write_text(yaml.safe_dump(values))
        with pytest.raises(ConfigError, match=message):
            load_settings(str(path))


def test_the_local_settings_ask_for_no_gpu(tmp_path):
    """pipelines/settings/local.yaml, for the `local` overlay whose quota allows no GPU."""
    from pathlib import Path

    settings = load_settings(str(Path(full.__file__).parent / "settings" / "local.yaml"))
    assert settings.use_gpus is False
    spec, executors = _compile(tmp_path, full, settings)
    for name in ("exec-pretrain", "exec-finetune", "exec-evaluate"):
        container = spec["deploymentSpec"]["executors"][name]["container"]
        assert "accelerator" not in container["resources"], name
        assert {"name": "DS_ACCELERATOR", "value": "cpu"} in container["env"], name
        assert "nodeSelector" not in executors[name] and "tolerations" not in executors[name], name


def test_shard_cache_pvc_and_other_settings_from_a_file(tmp_path):
    settings_file = tmp_path / "deploy.yaml"
    settings_file.write_text(
        yaml.safe_dump(
            {
                "shard_cache_pvc": "x2vlm-shard-cache",
                "image_pull_policy": "Always",
                "max_parallel_tasks": 2,
                "gpu_node_selector": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
            }
        )
    )
    spec, executors = _compile(tmp_path, full, load_settings(str(settings_file)))
    mounted = {name for name, k8s in executors.items() if "pvcMount" in k8s}
    assert mounted == {"exec-prepare-data", "exec-pretrain"}
    (mount,) = executors["exec-pretrain"]["pvcMount"]
    assert mount["mountPath"] == "/gcs" and mount["pvcNameParameter"]["runtimeValue"]["constant"] == "x2vlm-shard-cache"
    assert {k8s["imagePullPolicy"] for k8s in executors.values()} == {"Always"}
    assert executors["exec-finetune"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-a100-80gb"
    }
    loop = spec["components"]["comp-finetune-and-evaluate"]["dag"]["tasks"]["for-loop-1"]
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
    assert set(tasks) == {"validate-finetune-request", "importer", "importer-2", "finetune", "evaluate", "condition-1"}
    assert "dependentTasks" not in tasks["validate-finetune-request"]
    assert tasks["importer"]["dependentTasks"] == ["validate-finetune-request"]
    assert tasks["importer"]["inputs"]["parameters"]["uri"]["componentInputParameter"] == "base_model_uri"
    assert tasks["importer-2"]["inputs"]["parameters"]["uri"]["componentInputParameter"] == "shards_uri"
    finetune = tasks["finetune"]["inputs"]
    assert finetune["artifacts"]["pretrained"]["taskOutputArtifact"]["producerTask"] == "importer"
    # The hyper-parameters reach training only as the checks step's output.
    assert finetune["parameters"]["config_overrides"]["taskOutputParameter"] == {
        "producerTask": "validate-finetune-request",
        "outputParameterKey": "config_overrides",
    }
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "finetune"
    # One dataset for both steps; the shots only for training.
    for name in ("dataset", "few_shot"):
        assert finetune["parameters"][name] == {"componentInputParameter": name}
    assert tasks["evaluate"]["inputs"]["parameters"]["dataset"] == {"componentInputParameter": "dataset"}
    assert not tasks["validate-finetune-request"]["cachingOptions"].get("enableCache")
    assert tasks["evaluate"]["retryPolicy"]["maxRetryCount"] == DeploymentSettings().retries
    k8s = _gpu_pod(executors, spec, "exec-finetune", "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}")
    assert k8s["nodeSelector"] == {"labels": GPU_SELECTOR} and k8s["tolerations"] == [GPU_TOLERATION]
    assert set(executors["exec-validate-finetune-request"]) == {"imagePullPolicy", "securityContext"}


def test_the_data_root_reaches_prepare_data_and_the_input_check(full_ir):
    spec, _ = full_ir
    tasks = _all_tasks(spec)
    assert spec["root"]["inputDefinitions"]["parameters"]["data_root"]["defaultValue"] == ""  # today's layout
    channel = {"componentInputParameter": "pipelinechannel--data_root"}
    assert tasks["prepare-data"]["inputs"]["parameters"]["data_root"] == channel
    checked = tasks["validate-full-run"]["inputs"]["parameters"]
    assert checked["data_root"] == channel
    assert checked["beam_options"] == {"componentInputParameter": "pipelinechannel--beam_options"}


def test_pretrain_and_finetune_keep_checkpoints_under_the_checkpoint_root_by_run_id(full_ir, single_ir):
    from kfp import dsl

    run_id = {"runtimeValue": {"constant": dsl.PIPELINE_JOB_ID_PLACEHOLDER}}  # the same for every retry
    for (spec, _), channel, training, check in (
        (full_ir, "pipelinechannel--checkpoint_root", ("pretrain", "finetune"), "validate-full-run"),
        (single_ir, "checkpoint_root", ("finetune",), "validate-finetune-request"),
    ):
        assert spec["root"]["inputDefinitions"]["parameters"]["checkpoint_root"]["defaultValue"] == ""
        tasks = _all_tasks(spec)
        for name in training:
            given = tasks[name]["inputs"]["parameters"]
            assert given["checkpoint_root"] == {"componentInputParameter": channel} and given["run_id"] == run_id, name
        assert tasks[check]["inputs"]["parameters"]["checkpoint_root"] == {"componentInputParameter": channel}
    # The fan-out hands the root on to each task's finetune.
    fan = _all_tasks(full_ir[0])["finetune-and-evaluate"]["inputs"]["parameters"]
    assert fan["checkpoint_root"] == {"componentInputParameter": "pipelinechannel--checkpoint_root"}


def test_each_task_takes_its_own_finetune_overrides_through_the_fan_out(full_ir):
    spec, _ = full_ir
    assert spec["root"]["inputDefinitions"]["parameters"]["finetune_task_overrides"]["defaultValue"] == {}
    tasks = _all_tasks(spec)
    fan = tasks["finetune-and-evaluate"]["inputs"]["parameters"]
    assert fan["task_overrides"] == {"componentInputParameter": "pipelinechannel--finetune_task_overrides"}
    given = tasks["finetune"]["inputs"]["parameters"]["task_overrides"]
    assert given == {"componentInputParameter": "pipelinechannel--task_overrides"}
    checked = tasks["validate-full-run"]["inputs"]["parameters"]["finetune_task_overrides"]
    assert checked == {"componentInputParameter": "pipelinechannel--finetune_task_overrides"}
