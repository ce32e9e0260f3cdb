"""The single-task pipeline (the UI-triggered run): every input checked first, then a kfp.local run."""

import json
import os

import pytest

from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.run_checks import check_finetune_request


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """An untrained tiny model folder, the shape a pretrain step writes."""
    from x2vlm_core.families import create_model
    from x2vlm_core.release.model_folder import save_model_dir

    return save_model_dir(create_model("x2vlm_tiny"), tmp_path_factory.mktemp("base") / "model")


def _request(base_model, shards, **changes):
    values = dict(
        task="retrieval",
        base_model_uri=str(base_model),
        shards_uri=str(shards),
        learning_rate=1e-4,
        warmup_steps=1,
        steps=2,
        batch_size=8,
        gpus_per_node=1,
        config_overrides=[],
    )
    values.update(changes)
    return check_finetune_request(**values)


def test_every_bad_input_names_itself(base_model, tiny_shards, tmp_path):
    assert _request(base_model, tiny_shards, learning_rate=5e-4, config_overrides=["train.seed=7"]) == [
        "train.optim.lr=0.0005",
        "train.optim.warmup_steps=1",
        "train.seed=7",
    ]
    # Another dataset of the task, and a few-shot run on its few_shot split, pass the checks.
    assert _request(base_model, tiny_shards, task="vqa", dataset="xgqa")
    assert _request(base_model, tiny_shards, task="xvnli", few_shot=8)
    cases = {
        "unknown task\\(s\\) \\['captions'\\]; available tasks: .*retrieval": dict(task="captions"),
        "base model URI .*/nowhere does not exist": dict(base_model_uri=str(tmp_path / "nowhere")),
        "base model URI is empty": dict(base_model_uri=""),
        "learning_rate must be a number > 0, got 0": dict(learning_rate=0.0),
        "learning_rate must be a number > 0, got -0.1": dict(learning_rate=-0.1),
        "steps must be a whole number ≥ 1, got 0": dict(steps=0),
        "batch_size must be a whole number ≥ 1": dict(batch_size=-4),
        "warmup_steps must be a whole number ≥ 0": dict(warmup_steps=-1),
        "shards URI .*/empty has no index.json": dict(shards_uri=str(tmp_path / "empty")),
        "unknown key\\(s\\) \\['sed'\\] in train": dict(config_overrides=["train.sed=7"]),
        "few_shot must be a whole number ≥ 0": dict(few_shot=-2),
        "no 'multi30k' 'train' split, which task 'retrieval' trains on": dict(dataset="multi30k"),
        "no 'retrieval' 'few_shot' split": dict(few_shot=8),
    }
    for message, change in cases.items():
        with pytest.raises((ConfigError, DataError), match=message):
            _request(base_model, tiny_shards, **change)


def test_shards_without_the_task_split_are_refused(base_model, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "index.json").write_text(
        json.dumps({"total": 1, "datasets": {"grounding": {"train": {"count": 1, "shards": []}}}})
    )
    with pytest.raises(DataError, match="no 'retrieval' 'train' split.*found: none"):
        _request(base_model, shards)


def _finetune_command(tmp_path, monkeypatch, **arguments) -> tuple[list[str], dict]:
    """The `x2vlm` command line the finetune component launches, and the Model metadata it records."""
    from kfp.dsl import Dataset, Model

    from components.finetune import finetune
    from x2vlm_core.train import launch

    shards = tmp_path / "shards"
    shards.mkdir(exist_ok=True)
    (shards / "index.json").write_text(json.dumps({"total": 0, "datasets": {}}))
    launched = []

    def run_under_torchrun(cli_args, output_dir, nproc_per_node=1, overrides=None):
        launched.append(cli_args)
        return {"steps": 2, "final": {"loss": 1.0}, "seconds": 0.1, "world_size": 1, "history": []}

    monkeypatch.setattr(launch, "run_under_torchrun", run_under_torchrun)
    model = Model(uri=str(tmp_path / "model"))
    finetune.python_func(
        task="vqa",
        shards=Dataset(uri=str(shards)),
        pretrained=Model(uri=str(tmp_path / "base")),
        model=model,
        **arguments,
    )
    (command,) = launched
    return command, model.metadata


def test_finetune_component_passes_dataset_and_few_shot_only_when_set(tmp_path, monkeypatch):
    command, meta = _finetune_command(tmp_path, monkeypatch)
    assert not {"--dataset", "--few-shot", "--languages"} & set(command)
    assert (meta["dataset"], meta["few_shot"], meta["languages"]) == ("vqa", 0, [])

    command, meta = _finetune_command(tmp_path, monkeypatch, dataset="xgqa", few_shot=8, languages=["de", "xx"])
    assert command[-7:] == ["--dataset", "xgqa", "--few-shot", "8", "--languages", "de", "xx"]
    assert (meta["dataset"], meta["few_shot"], meta["languages"]) == ("xgqa", 8, ["de", "xx"])


def test_finetune_component_keeps_checkpoints_under_the_run_scoped_root_only_when_given(tmp_path, monkeypatch):
    command, meta = _finetune_command(tmp_path, monkeypatch, run_id="run-7")
    assert "--checkpoint-root" not in command and "--run-id" not in command and meta["checkpoint_root"] == ""
    command, meta = _finetune_command(tmp_path, monkeypatch, checkpoint_root="gs://b/ckpt", run_id="run-7")
    assert command[-4:] == ["--checkpoint-root", "gs://b/ckpt", "--run-id", "run-7"]
    assert meta["checkpoint_root"] == "gs://b/ckpt"


def test_evaluate_component_passes_dataset_and_splits_only_when_set(tmp_path, monkeypatch):
    from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model

    from components.evaluate import evaluate
    from x2vlm_core.evaluation import run as evaluation

    calls = []

    def run_evaluation(task, model_dir, shards_root, output_dir, options=None, dataset=None, splits=None):
        calls.append({"dataset": dataset, "splits": splits})
        os.makedirs(output_dir)
        with open(os.path.join(output_dir, evaluation.METRICS_FILE), "w") as f:
            json.dump({"task": task, "metrics": {"test_accuracy": 0.5}}, f)
        with open(os.path.join(output_dir, evaluation.REPORT_FILE), "w") as f:
            f.write("<!DOCTYPE html>")
        with open(os.path.join(output_dir, evaluation.PREDICTIONS_FILE), "w") as f:
            f.write(json.dumps({"split": "test", "prediction": 1}) + "\n")
        return {"test_accuracy": 0.5}

    monkeypatch.setattr(evaluation, "run_evaluation", run_evaluation)
    recorded = []
    for name, arguments in {"default": {}, "chosen": {"dataset": "marvl", "splits": ["test"]}}.items():
        metrics = Metrics(uri=str(tmp_path / name / "metrics"))
        predictions = Artifact(uri=str(tmp_path / name / "predictions"))
        evaluate.python_func(
            task="nlvr2",
            shards=Dataset(uri=str(tmp_path / "shards")),
            model=Model(uri=str(tmp_path / "model")),
            metrics=metrics,
            report=HTML(uri=str(tmp_path / name / "report")),
            predictions=predictions,
            **arguments,
        )
        recorded.append((metrics.metadata["dataset"], metrics.metadata["splits"]))
        # The predictions are an artifact of their own, one JSON line per query.
        assert json.loads(open(predictions.path).readline()) == {"split": "test", "prediction": 1}
        assert predictions.metadata["task"] == "nlvr2"
    assert calls == [{"dataset": None, "splits": None}, {"dataset": "marvl", "splits": ["test"]}]
    assert recorded == [("nlvr2", "the task's evaluation splits"), ("marvl", "test")]


def _run(tmp_path, **arguments):
    import kfp.local

    from pipelines.single_task_finetune import single_task_finetune

    root = tmp_path / "pipeline_root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    single_task_finetune(**arguments)
    return root


@pytest.mark.pipeline
@pytest.mark.deepspeed
@pytest.mark.slow
def test_single_task_pipeline_runs_locally(base_model, tiny_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # Another dataset of the shards (xFlickr&CO, English train, multilingual test), as a user picks in the form.
    root = _run(
        tmp_path,
        task="retrieval",
        base_model_uri=str(base_model),
        shards_uri=str(tiny_shards),
        learning_rate=5e-4,
        warmup_steps=1,
        steps=2,
        batch_size=8,
        dataset="xflickrco",
    )
    (finetuned,) = root.glob("*/finetune/executor_output.json")
    (model,) = json.loads(finetuned.read_text())["artifacts"]["model"]["artifacts"]
    meta = model["metadata"]
    assert meta["task"] == "retrieval" and meta["steps"] == 2
    assert meta["dataset"] == "xflickrco" and meta["few_shot"] == 0
    assert meta["parent_model"] == str(base_model) and meta["inputs"]["pretrained"] == str(base_model)
    assert "train.optim.lr=0.0005" in meta["config_overrides"]
    assert meta["training"]["train_config"]["optim"]["lr"] == 5e-4  # the checked value reached training
    assert meta["data"]["index_sha256"] and meta["code_version"]
    (evaluated,) = root.glob("*/evaluate/executor_output.json")
    (metrics,) = json.loads(evaluated.read_text())["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"]["task"] == "retrieval" and metrics["metadata"]["dataset"] == "xflickrco"
    assert any(k.startswith("test_xx_") for k in metrics["metadata"])  # scored per language: it was xFlickr&CO


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_bad_request_fails_fast_with_its_message(base_model, tiny_shards, tmp_path, capfd):
    with pytest.raises(RuntimeError, match="validate-finetune-request"):
        _run(
            tmp_path,
            task="retrieval",
            base_model_uri=str(tmp_path / "typo-model"),
            shards_uri=str(tiny_shards),
            learning_rate=1e-4,
        )
    logs = capfd.readouterr()
    assert f"the base model URI {tmp_path / 'typo-model'} does not exist" in logs.out + logs.err
    assert not list((tmp_path / "pipeline_root").glob("*/finetune"))  # nothing trained
