"""The up-front run check: every problem of a run named at once, before any data is prepared."""

from __future__ import annotations

import pytest

from components.validate_inputs import validate_full_run
from pipelines.deployment import DeploymentSettings, pod_resources
from x2vlm_core.cli import main
from x2vlm_core.errors import ConfigError, DataError, RunCheckError
from x2vlm_core.run_checks import validate_run


def _full_run(sources, output_root, **changes):
    """The full pipeline's validate-inputs step, called as the pipeline calls it."""
    values = dict(
        sources=str(sources),
        output_root=str(output_root),
        tasks=["retrieval", "grounding"],
        model_preset="x2vlm_tiny",
        pretrain_steps=10,
        pretrain_batch_size=8,
        finetune_steps=5,
        finetune_batch_size=8,
        num_nodes=1,
        gpus_per_node=1,
        pretrain_overrides=[],
        finetune_overrides=[],
        gpu_node_selector={},
        gpu_tolerations=[],
        pod_resources=pod_resources(DeploymentSettings()),
    )
    values.update(changes)
    return validate_full_run.python_func(**values)


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "captions.json").write_text("{}")
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n- {format: coco_captions, dataset: d, split: train, annotations: captions.json, images: images}\n"
    )
    return path


def test_a_good_full_run_passes_and_leaves_no_probe_behind(sources, tmp_path):
    releases = tmp_path / "releases"
    releases.mkdir()
    plan = _full_run(sources, releases)
    assert plan.pretrain_pod_gpus == 1
    assert (plan.pretrain_pod_cpu_request, plan.pretrain_pod_memory_limit) == ("8", "160Gi")  # it trains itself
    assert list(releases.iterdir()) == []


def test_a_multi_node_pretrain_pod_only_follows_its_trainjob_on_a_light_pod(sources, gcs_bucket):
    plan = _full_run(sources, gcs_bucket, num_nodes=2, gpus_per_node=8, pretrain_batch_size=16, finetune_batch_size=8)
    light = DeploymentSettings().resources["light"]
    assert (plan.pretrain_pod_gpus, plan.pretrain_pod_node_selector) == (0, {})
    assert (plan.pretrain_pod_cpu_request, plan.pretrain_pod_cpu_limit) == (light.cpu_request, light.cpu_limit)
    assert (plan.pretrain_pod_memory_request, plan.pretrain_pod_memory_limit) == (
        light.memory_request,
        light.memory_limit,
    )


def test_vlmo_with_the_default_tasks_is_refused_for_grounding(sources, tmp_path):
    # One problem (retrieval is fine) raises as itself, one line.
    with pytest.raises(ConfigError, match="VLMo cannot do grounding: it has no box head"):
        _full_run(sources, tmp_path, model_preset="vlmo_base")


def test_zero_stage_4_is_refused(sources, tmp_path):
    with pytest.raises(ConfigError, match="ZeRO stage 4 is not supported"):
        _full_run(sources, tmp_path, pretrain_overrides=["train.zero_stage=4"])


def test_a_task_override_is_checked_with_the_shared_ones_and_only_for_a_run_task(sources, tmp_path):
    _full_run(sources, tmp_path, finetune_task_overrides={"grounding": ["train.steps=12"]})
    with pytest.raises(RunCheckError) as raised:
        _full_run(
            sources,
            tmp_path,
            finetune_task_overrides={
                "grounding": ["train.zero_stage=4"],
                "vqa": ["train.steps=3"],
                "retrieval": "train.steps=3",
            },
        )
    message = str(raised.value)
    assert "fine-tuning grounding" in message and "ZeRO stage 4 is not supported" in message
    assert "names 'vqa', which is not one of this run's tasks ['retrieval', 'grounding']" in message
    assert "finetune_task_overrides['retrieval'] is 'train.steps=3'; give a list of KEY=VALUE strings" in message


def test_a_missing_output_bucket_is_refused(sources, gcs_emulator):
    with pytest.raises(DataError, match="output root gs://no-such-bucket-x2vlm/releases is not writable"):
        _full_run(sources, "gs://no-such-bucket-x2vlm/releases")


def test_every_problem_is_named_at_once_one_line_each(tmp_path, gcs_emulator):
    with pytest.raises(RunCheckError) as caught:
        _full_run(
            tmp_path / "nope.yaml",
            "gs://no-such-bucket-x2vlm/releases",
            model_preset="vlmo_base",
            pretrain_overrides=["train.zero_stage=4"],
            finetune_overrides=["train.precision=fp8"],
            num_nodes=3,
            gpus_per_node=1,
            pretrain_batch_size=8,
        )
    problems = caught.value.problems
    expected = [
        "sources file",
        "pre-training: ZeRO stage 4",
        "pre-training: train.batch_size=8 is not divisible",
        "VLMo cannot do grounding",
        "fine-tuning: train.precision 'fp8'",
        "not writable",
    ]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)
    assert all("\n" not in problem for problem in problems)
    message = str(caught.value)
    assert message.count("\n") == len(problems) == len(expected)  # fine-tuning runs on one node: its batch splits


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    with pytest.raises(ConfigError, match="train.batch_size=10 is not divisible by world size 4"):
        validate_run(model_preset="x2vlm_tiny", pretrain_overrides=["train.batch_size=10"], world_size=4)


def test_the_cli_checks_before_any_work(capsys, tmp_path):
    argv = [
        "pretrain",
        "--shards",
        str(tmp_path / "no-shards"),
        "--output",
        str(tmp_path / "out"),
        "--model",
        "vlmo_tiny",
        "--set",
        "train.zero_stage=4",
        "--set",
        "train.compile=sometimes",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "2 problem(s) with this run" in err and "ZeRO stage 4" in err and "train.compile 'sometimes'" in err
    assert not (tmp_path / "out").exists()


def test_the_data_root_must_take_a_write_and_remote_beam_workers_need_it_on_gcs(sources, tmp_path, gcs_bucket):
    data = tmp_path / "data"
    data.mkdir()
    _full_run(sources, tmp_path, data_root=str(data), beam_options=["--runner=DirectRunner"])
    assert list(data.iterdir()) == []  # the probe is gone
    with pytest.raises(DataError, match="the data root gs://no-such-bucket-x2vlm/data is not writable"):
        _full_run(sources, tmp_path, data_root="gs://no-such-bucket-x2vlm/data")
    for options, runner in (
        (["--runner=DataflowRunner"], "DataflowRunner"),
        (["--runner", "FlinkRunner"], "FlinkRunner"),
    ):
        for data_root in ("", str(data)):
            with pytest.raises(ConfigError, match=f"on {runner}, whose workers .* set data_root to a gs://"):
                _full_run(sources, tmp_path, data_root=data_root, beam_options=options)
    _full_run(sources, tmp_path, data_root=f"{gcs_bucket}/data", beam_options=["--runner=DataflowRunner"])
    # Nodes of a multi-node run all read the shards: a local data root is not the same place on each.
    with pytest.raises(ConfigError, match=f"the data root {data} is not gs://, but this run spans 2 nodes"):
        _full_run(sources, f"{gcs_bucket}/releases", data_root=str(data), num_nodes=2)
