"""The release gate in a real kfp.local run of the full pipeline: thresholds met publish the pre-trained
model and each task model; a threshold above the achieved metric publishes nothing.

One small run (one task, a few steps) with local caching on; the second run reuses its prepared data,
training and evaluation from the cache and only decides again.
"""

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.pipeline, pytest.mark.beam, pytest.mark.deepspeed]

TASK = "retrieval"
NAME = "gate-test"


def _run(shapes_world, root: Path, **gate):
    from pipelines.full_pretrain_finetune import full_pretrain_finetune

    world, _ = shapes_world
    full_pretrain_finetune(
        sources=str(world / "sources.yaml"),
        model_preset="x2vlm_tiny",
        pretrain_steps=2,
        pretrain_batch_size=8,
        tasks=[TASK],
        finetune_steps=2,
        finetune_batch_size=8,
        shard_size=64,
        max_image_side=64,
        output_root=str(root / "releases"),
        model_name=NAME,
        pretrain_overrides=["train.optim.warmup_steps=1", "train.region_batch_images=8", "train.region_batch_size=16"],
        finetune_overrides=["train.optim.warmup_steps=1"],
        **gate,
    )


def _outputs(root: Path, task: str) -> list[Path]:
    """The executor_output.json of every run of ``task``, oldest run first."""
    return sorted(path for path in (root / "pipeline_root").rglob("executor_output.json") if path.parent.name == task)


def _releases(root: Path, name: str) -> list[Path]:
    return sorted(p.parent for p in (root / "releases" / name).glob("*/manifest.json"))


@pytest.fixture(scope="module")
def first_run(shapes_world, tmp_path_factory):
    """The first release of NAME, with a threshold the tiny model meets (any value ≥ 0)."""
    import kfp.local

    root = tmp_path_factory.mktemp("gate")
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root / "pipeline_root"),
        enable_caching=True,
    )
    _run(shapes_world, root, min_metrics={f"{TASK}/test_img_r1": 0.0})
    return root


def test_metrics_that_pass_the_gate_publish_the_pretrained_and_the_task_model(first_run):
    from x2vlm_core.release.fetch import verify_release

    (pretrained,) = _releases(first_run, NAME)
    (task_model,) = _releases(first_run, f"{NAME}-{TASK}")
    verify_release(pretrained)
    verify_release(task_model)
    assert task_model.name == pretrained.name  # one version for the run's releases
    lineage = json.loads((task_model / "lineage.json").read_text())
    assert lineage["parent"]["release"] == str(pretrained) and lineage["parent"]["release_name"] == NAME
    assert json.loads((task_model / "metrics.json").read_text()).keys() == {TASK}
    assert json.loads((pretrained / "metrics.json").read_text()).keys() == {TASK}
    (gate,) = _outputs(first_run, "release-gate")
    assert json.loads(gate.read_text())["parameterValues"]["Output"] is True


def test_a_threshold_above_the_achieved_metric_publishes_nothing(first_run, shapes_world):
    (evaluated,) = (first_run / "pipeline_root").glob("*/for-loop-*/evaluate/metrics")
    achieved = json.loads(evaluated.read_text())["metrics"]["test_img_r1"]
    _run(shapes_world, first_run, min_metrics={f"{TASK}/test_img_r1": achieved + 0.01})
    assert len(_releases(first_run, NAME)) == 1 and len(_releases(first_run, f"{NAME}-{TASK}")) == 1
    gates = _outputs(first_run, "release-gate")
    assert len(gates) == 2
    assert json.loads(gates[-1].read_text())["parameterValues"]["Output"] is False
    decision = json.loads((gates[-1].parent / "decision").read_text())
    assert decision["publish"] is False
    assert decision["reasons"] == [f"{TASK}/test_img_r1 = {achieved:.4f} is below the threshold {achieved + 0.01:.4f}"]
    # Nothing under the gate ran in the second run.
    assert len(_outputs(first_run, "publish")) == len(_outputs(first_run, "publish-task-models")) == 1
