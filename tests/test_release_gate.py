"""The release gate (x2vlm_core/release/gate.py) and task releases, on real release folders."""

import json

import pytest

from x2vlm_core.errors import ConfigError, ReleaseError
from x2vlm_core.release.gate import (
    decide,
    gate_release,
    is_quality_metric,
    latest_release_metrics,
)


def _release(root, name, version, metrics, latest=True):
    """A complete release folder as publish writes it (manifest last), with its metrics."""
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "manifest.json").write_text(json.dumps({"version": version, "files": []}))
    if latest:
        (root / name / "LATEST").write_text(version + "\n")
    return folder


CANDIDATE = {
    "retrieval": {"test_img_r1": 0.40, "test_txt_r1": 0.50, "test_count": 100, "test_chance": 0.01},
    "grounding": {"test_acc_iou50": 0.70, "test_mean_box_acc_iou50": 0.2},
}


def test_a_first_release_passes_and_thresholds_decide(tmp_path):
    decision = gate_release(CANDIDATE, str(tmp_path), "x2vlm")
    assert decision.passed and decision.compared_to == "" and decision.checked == 0
    decision = gate_release(CANDIDATE, str(tmp_path), "x2vlm", {"retrieval/test_img_r1": 0.39})
    assert decision.passed and decision.checked == 1
    decision = gate_release(
        CANDIDATE, str(tmp_path), "x2vlm", {"retrieval/test_img_r1": 0.41, "grounding/test_acc_iou50": 0.5}
    )
    assert not decision.passed
    assert decision.reasons == ["retrieval/test_img_r1 = 0.4000 is below the threshold 0.4100"]
    assert decision.summary().startswith("do not publish: retrieval/test_img_r1")


def test_no_regression_against_the_latest_release_of_the_same_name(tmp_path):
    _release(tmp_path, "x2vlm", "v1", {"retrieval": {"test_img_r1": 0.30, "test_txt_r1": 0.50, "test_count": 999}})
    latest = _release(tmp_path, "x2vlm", "v2", {"retrieval": {"test_img_r1": 0.45, "test_txt_r1": 0.50}})
    _release(tmp_path, "x2vlm-retrieval", "v9", {"retrieval": {"test_img_r1": 0.99}})  # another name
    decision = gate_release(CANDIDATE, str(tmp_path), "x2vlm")
    assert not decision.passed and decision.compared_to == str(latest)
    assert decision.reasons == [f"retrieval/test_img_r1 = 0.4000 regressed from 0.4500 in {latest}"]
    assert decision.checked == 2  # img and txt R@1: counts, baselines and tasks absent before are not compared
    assert gate_release(CANDIDATE, str(tmp_path), "x2vlm", max_regression=0.05).passed
    assert gate_release(CANDIDATE, str(tmp_path), "x2vlm", compare_to_latest=False).passed


def test_bad_thresholds_and_a_broken_latest_are_errors(tmp_path):
    with pytest.raises(ConfigError, match='must look like "<task>/<metric>"'):
        gate_release(CANDIDATE, str(tmp_path), "x2vlm", {"test_img_r1": 0.5})
    with pytest.raises(
        ConfigError,
        match="names retrieval/test_img_r5, which evaluation did not produce; it "
        "produced: grounding/test_acc_iou50, retrieval/test_img_r1",
    ):
        gate_release(CANDIDATE, str(tmp_path), "x2vlm", {"retrieval/test_img_r5": 0.5})
    with pytest.raises(ConfigError, match="max_regression must be 0 or more"):
        decide(CANDIDATE, max_regression=-0.1)
    (tmp_path / "x2vlm").mkdir()
    (tmp_path / "x2vlm" / "LATEST").write_text("v3\n")  # names a version that never completed
    with pytest.raises(ReleaseError, match="names version 'v3', which is not a version with a manifest.json"):
        latest_release_metrics(str(tmp_path), "x2vlm")
    assert not is_quality_metric("test_accuracy", True) and not is_quality_metric("x", float("nan"))


def test_a_task_model_is_released_under_its_own_name_with_its_parent(tmp_path):
    from x2vlm_core.families import create_model
    from x2vlm_core.release.fetch import verify_release
    from x2vlm_core.release.model_folder import save_model_dir
    from x2vlm_core.release.task_release import parent_release_of, publish_task_release

    model = save_model_dir(create_model("x2vlm_tiny"), tmp_path / "model")
    parent = _release(tmp_path / "out", "x2vlm", "v20260101-000000", {})
    assert parent_release_of(str(tmp_path / "out" / "x2vlm")) == str(parent)  # via LATEST
    assert parent_release_of(str(model)) == ""  # a plain model folder is no release
    where = publish_task_release(
        model,
        str(tmp_path / "out"),
        "x2vlm",
        "retrieval",
        {"test_img_r1": 0.4},
        {"pipeline_run": {"name": "r"}},
        parent_model=str(model),
        parent_release=str(parent),
        version="v20260101-000000",
    )
    assert where == str(tmp_path / "out" / "x2vlm-retrieval" / "v20260101-000000")
    verify_release(where)
    lineage = json.loads((tmp_path / "out" / "x2vlm-retrieval" / "v20260101-000000" / "lineage.json").read_text())
    assert lineage["parent"] == {"model": str(model), "release": str(parent), "release_name": "x2vlm"}
    assert lineage["task"] == "retrieval"
    metrics = json.loads((tmp_path / "out" / "x2vlm-retrieval" / "v20260101-000000" / "metrics.json").read_text())
    assert metrics == {"retrieval": {"test_img_r1": 0.4}}
