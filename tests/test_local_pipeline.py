"""End to end: `make run`'s pipeline through kfp.local, checked for consistent outputs."""

import json
from pathlib import Path

import pytest

from x2vlm_core.data.shards import read_index
from x2vlm_core.release.model_folder import load_model_dir
from x2vlm_core.release.publish import verify_release


@pytest.mark.slow
def test_local_pipeline_end_to_end(local_pipeline_run):
    run_dir, done = local_pipeline_run
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_status"] == ["SUCCEEDED"]  # the exit handler recorded the run's end

    # Shards hold exactly what the generator wrote (the synthetic data has no rejects).
    manifest = json.loads((run_dir / "synthetic" / "manifest.json").read_text())
    (shards,) = summary["shards"]
    index = read_index(shards)
    # The Dataset artifact is a manifest; the shards every stage read lie under the run's data root.
    assert sorted(p.name for p in Path(shards).iterdir()) == ["index.json", "location.json"]
    (data,) = summary["shard_data"]
    assert Path(data).parent == run_dir / "data" / "shards" and sorted(Path(data).glob("*/*.tar"))
    counts = {d: {s: v["count"] for s, v in splits.items()} for d, splits in index["datasets"].items()}
    assert counts == manifest["datasets"]

    (pretrained,) = summary["pretrained_model"]
    load_model_dir(pretrained)
    assert len(summary["finetuned_models"]) == 2
    for path in summary["finetuned_models"]:
        load_model_dir(path)

    assert set(summary["metrics"]) == {"retrieval", "grounding"}
    for task, values in summary["metrics"].items():
        numbers = {k: v for k, v in values.items() if k != "file" and not k.endswith("_count")}
        assert numbers and all(0.0 <= v <= 1.0 for v in numbers.values()), (task, numbers)

    (release,) = summary["published"]
    manifest = verify_release(release)
    names = {f["path"] for f in manifest["files"]}
    assert {
        "model.safetensors",
        "config.yaml",
        "tokenizer/vocab.txt",
        "metrics.json",
        "lineage.json",
        "MODEL_CARD.md",
    } <= names
    published_metrics = json.loads((Path(release) / "metrics.json").read_text())
    assert set(published_metrics) == {"retrieval", "grounding"}
    # Each task model is a release of its own, <model_name>-<task>, whose lineage names the pre-trained one.
    assert sorted(Path(p).parent.name.rsplit("-", 1)[1] for p in summary["task_releases"]) == ["grounding", "retrieval"]
    for task_release in summary["task_releases"]:
        verify_release(task_release)
        assert json.loads((Path(task_release) / "lineage.json").read_text())["parent"]["release"] == release


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_failed_run_is_recorded_by_the_exit_handler(tmp_path, capfd):
    """A missing sources file fails the checks step within seconds; the exit task still records the run."""
    import kfp.local

    from pipelines.full_pretrain_finetune import full_pretrain_finetune

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with pytest.raises(RuntimeError, match="validate-full-run"):
        full_pretrain_finetune(
            sources=str(tmp_path / "no-such-sources.yaml"), output_root=str(tmp_path / "out"), model_preset="x2vlm_tiny"
        )
    assert f"sources file {tmp_path / 'no-such-sources.yaml'} does not exist" in "".join(capfd.readouterr())
    (record,) = (tmp_path / "out" / "run-status").glob("*.json")
    status = json.loads(record.read_text())
    assert status["state"] == "FAILED" and status["code_version"]
    assert not list((tmp_path / "root").glob("*/prepare-data"))  # nothing ran after the failed check


@pytest.mark.pipeline
@pytest.mark.beam
@pytest.mark.deepspeed
@pytest.mark.slow
@pytest.mark.parametrize(
    "model, family, tasks",
    [
        ("vlmo_tiny", "vlmo", {"retrieval", "nlvr2"}),
        ("cclm_tiny", "cclm", {"retrieval", "xvnli"}),
        ("xvlm_tiny", "xvlm", {"retrieval", "grounding"}),
    ],
)
def test_the_other_model_families_run_the_same_pipeline(model, family, tasks, tmp_path):
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "pipelines.run_local",
        "--model",
        model,
        "--runs-dir",
        str(tmp_path),
        "--num-images",
        "96",
        "--pretrain-steps",
        "4",
        "--finetune-steps",
        "2",
        "--tasks",
        *sorted(tasks),
    ]
    done = subprocess.run(
        command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_status"] == ["SUCCEEDED"]
    (pretrained,) = summary["pretrained_model"]
    assert getattr(load_model_dir(pretrained).config, "family", None) == family
    assert set(summary["metrics"]) == tasks
    for task, values in summary["metrics"].items():
        numbers = {k: v for k, v in values.items() if k != "file" and not k.endswith("_count")}
        assert numbers and all(0.0 <= v <= 1.0 for v in numbers.values()), (task, numbers)
    (release,) = summary["published"]
    verify_release(release)


def test_the_run_reports_progress_and_ends_with_a_summary_in_words(local_pipeline_run):
    run_dir, done = local_pipeline_run
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    steps = [line.split()[1] for line in out.splitlines() if line.startswith("  done  ")]
    assert steps.index("prepare-data") < steps.index("pretrain") < steps.index("publish")
    table = out[out.index("=== X²-VLM local pipeline finished") :]
    assert "task" in table and "× baseline" in table
    assert any(line.startswith("retrieval") and "chance (1 / images)" in line for line in table.splitlines())
    assert any(line.startswith("grounding") and "one mean box" in line for line in table.splitlines())
    assert f"lineage: {run_dir / 'lineage.html'}" in table and (run_dir / "lineage.html").is_file()
    reports = [
        line.split(": ", 1)[1] for line in table.splitlines() if line.startswith(("  retrieval:", "  grounding:"))
    ]
    assert len(reports) == 2 and all(Path(report).is_file() for report in reports)
    assert "Traceback" not in out and len(out.splitlines()) < 60  # the full log is in pipeline.log
    assert (run_dir / "pipeline.log").stat().st_size > 0
