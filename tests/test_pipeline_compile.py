"""The compiled KFP IR: the DAG, the fan-out, the typed artifacts, the images."""

import yaml
from kfp import compiler

from components import images
from pipelines.full_pretrain_finetune import full_pretrain_finetune


def _compile(tmp_path):
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(full_pretrain_finetune, package_path=str(path))
    return yaml.safe_load(path.read_text())


def test_dag_wires_every_stage(tmp_path):
    spec = _compile(tmp_path)
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"prepare-data", "pretrain", "for-loop-1", "publish"}
    assert root["pretrain"]["dependentTasks"] == ["prepare-data"]
    loop = root["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--tasks"
    inner = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert set(inner) == {"finetune", "evaluate"}
    assert inner["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "finetune"
    # publish collects every task's metrics from the loop.
    publish_inputs = root["publish"]["inputs"]["artifacts"]["task_metrics"]
    assert publish_inputs["taskOutputArtifact"]["producerTask"] == "for-loop-1"


def test_artifacts_are_typed(tmp_path):
    spec = _compile(tmp_path)
    comps = spec["components"]
    assert comps["comp-prepare-data"]["outputDefinitions"]["artifacts"]["shards"]["artifactType"]["schemaTitle"] == "system.Dataset"
    assert comps["comp-pretrain"]["outputDefinitions"]["artifacts"]["model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert comps["comp-evaluate"]["outputDefinitions"]["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert comps["comp-publish"]["inputDefinitions"]["artifacts"]["task_metrics"]["isArtifactList"] is True


def test_parameters_have_defaults_for_the_run_form(tmp_path):
    params = _compile(tmp_path)["root"]["inputDefinitions"]["parameters"]
    assert params["sources"]["parameterType"] == "STRING" and "defaultValue" not in params["sources"]
    assert params["model_preset"]["defaultValue"] == "x2vlm_base"
    assert params["tasks"]["defaultValue"] == ["retrieval", "grounding"]


def test_every_executor_runs_one_of_our_images(tmp_path):
    executors = _compile(tmp_path)["deploymentSpec"]["executors"]
    ours = {images.TRAIN_IMAGE, images.BEAM_IMAGE, images.PUBLISH_IMAGE}
    used = {e["container"]["image"] for e in executors.values()}
    assert used <= ours and len(executors) == 5
    assert all(image.endswith(":" + images.TAG) for image in used)
