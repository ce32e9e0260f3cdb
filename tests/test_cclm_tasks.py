"""CCLM models through the fine-tuning tasks, per-language metrics, and the zero-/few-shot protocol."""

import json

import pytest
import torch

from x2vlm_core.cli import main
from x2vlm_core.errors import DataError
from x2vlm_core.evaluation.multilingual import samples_by_language
from x2vlm_core.evaluation.run import _split_metrics
from x2vlm_core.families import create_model
from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.models.task_heads import TaskHeads, attach_task_heads
from x2vlm_core.release.model_folder import load_model_dir, save_model_dir
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.train.finetune import few_shot_batches

FINETUNE_ARGS = [
    "--set",
    "train.steps=3",
    "--set",
    "train.batch_size=6",
    "--set",
    "train.log_every=3",
    "--set",
    "train.shuffle_buffer=16",
    "--set",
    "train.optim.warmup_steps=1",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_shards, tmp_path_factory) -> str:
    """A sentencepiece tokenizer trained on the shards' English and shapes-speak texts."""
    folder = tmp_path_factory.mktemp("tokenizer")
    assert main(["train-tokenizer", "--shards", str(tiny_shards), "--output", str(folder)]) == 0
    return str(folder)


@pytest.fixture(scope="module")
def cclm_folder(tokenizer, tmp_path_factory):
    """cclm_tiny built from its config, with that tokenizer, standing in for a pre-trained model."""
    torch.manual_seed(0)
    return save_model_dir(create_model("cclm_tiny", tokenizer=tokenizer), tmp_path_factory.mktemp("cclm") / "model")


def _finetune_and_evaluate(task, pretrained, shards, tmp_path, dataset=None, splits=(), options=()):
    picked = ["--dataset", dataset] if dataset else []
    model_dir, eval_dir = tmp_path / f"{task}-model", tmp_path / f"{task}-eval"
    assert (
        main(
            [
                "finetune",
                "--task",
                task,
                "--pretrained",
                str(pretrained),
                "--shards",
                str(shards),
                "--output",
                str(model_dir),
                *picked,
                *FINETUNE_ARGS,
            ]
        )
        == 0
    )
    chosen = [arg for split in splits for arg in ("--split", split)] + [a for o in options for a in ("--set", o)]
    assert (
        main(
            [
                "evaluate",
                "--task",
                task,
                "--model",
                str(model_dir),
                "--shards",
                str(shards),
                "--output",
                str(eval_dir),
                *picked,
                *chosen,
            ]
        )
        == 0
    )
    return model_dir, eval_dir, json.loads((eval_dir / "metrics.json").read_text())["metrics"]


def _in_range(metrics, keys):
    for key in keys:
        assert 0.0 <= metrics[key] <= 1.0, key


# ---------------------------------------------------------------- per-language splitting, by hand


def _sample(key, **meta):
    return {"key": key, "meta": meta, "images": []}


def test_retrieval_records_join_each_of_their_languages_with_only_those_captions():
    samples = [
        _sample("a", captions=["red", "rot", "a red one"], caption_languages=["en", "de", "en"]),
        _sample("b", captions=["blau"], caption_languages=["de"]),
    ]
    groups = samples_by_language(samples)
    assert list(groups) == ["de", "en"]
    assert [(s["key"], s["meta"]["captions"]) for s in groups["de"]] == [("a", ["rot"]), ("b", ["blau"])]
    assert [(s["key"], s["meta"]["captions"], s["meta"]["caption_languages"]) for s in groups["en"]] == [
        ("a", ["red", "a red one"], ["en", "en"])
    ]
    assert samples[0]["meta"]["captions"] == ["red", "rot", "a red one"]  # the records themselves are untouched


def test_classification_records_group_by_language_and_untagged_data_is_not_split():
    samples = [
        _sample("1", language="xx", label="entailment"),
        _sample("2", language="en", label="neutral"),
        _sample("3", language="xx", label="neutral"),
    ]
    assert {language: [s["key"] for s in group] for language, group in samples_by_language(samples).items()} == {
        "en": ["2"],
        "xx": ["1", "3"],
    }
    assert samples_by_language([_sample("k", captions=["a red circle"])]) is None
    with pytest.raises(DataError, match="carries no language"):
        samples_by_language(samples + [_sample("4", label="neutral")])


def test_split_metrics_per_language_with_the_average_over_the_non_english_ones():
    results = {
        "de": SplitResult({"accuracy": 0.25, "r_mean": 0.5}, []),
        "en": SplitResult({"accuracy": 0.75}, []),
        "xx": SplitResult({"accuracy": 0.5, "r_mean": 0.25}, []),
    }
    metrics = _split_metrics("test", results, {"de": 4, "en": 8, "xx": 4}, records=12)
    assert metrics == {
        "test_de_accuracy": 0.25,
        "test_de_r_mean": 0.5,
        "test_en_accuracy": 0.75,
        "test_xx_accuracy": 0.5,
        "test_xx_r_mean": 0.25,
        "test_avg_accuracy": 0.375,
        "test_avg_r_mean": 0.375,
        "test_de_count": 4,
        "test_en_count": 8,
        "test_xx_count": 4,
        "test_count": 12,
    }
    # One language: its keys, and the split's plain keys as for data without languages.
    assert _split_metrics("dev", {"en": SplitResult({"accuracy": 0.5}, [])}, {"en": 3}, records=3) == {
        "dev_en_accuracy": 0.5,
        "dev_en_count": 3,
        "dev_accuracy": 0.5,
        "dev_count": 3,
    }
    assert _split_metrics("val", {None: SplitResult({"accuracy": 0.5}, [])}, {None: 3}, records=3) == {
        "val_accuracy": 0.5,
        "val_count": 3,
    }


def test_few_shot_batches_cycle_through_every_example_in_seeded_order():
    samples = [{"key": str(i)} for i in range(5)]
    batches = few_shot_batches(samples, 2, "0:0")
    first_pass = [next(batches) for _ in range(2)]
    assert all(len(batch) == 2 for batch in first_pass)
    assert len({s["key"] for batch in first_pass for s in batch}) == 4  # no repeats within a pass
    again = few_shot_batches(samples, 2, "0:0")
    assert [next(again) for _ in range(2)] == first_pass


# ---------------------------------------------------------------- the CCLM answer decoder


def test_cclm_vqa_decoder_starts_from_the_cross_encoder_and_text_embeddings(tokenizer):
    torch.manual_seed(0)
    model = create_model("cclm_tiny", tokenizer=tokenizer)
    attach_task_heads(model, TaskHeads(task="vqa", decoder_layers=model.config.cross.num_layers, labels=["yes"]))
    model.init_answer_decoder(model.text_decoder)
    decoder = model.text_decoder
    for source, layer in zip(model.cross_encoder.encoder.layer, decoder.bert.encoder.layer):
        assert torch.equal(source.attention.self.query.weight, layer.attention.self.query.weight)
        assert torch.equal(source.crossattention.self.query.weight, layer.crossattention.self.query.weight)
    text = model.text_encoder.embeddings
    assert torch.equal(decoder.bert.embeddings.word_embeddings.weight, text.word_embeddings.weight)
    first = model.config.text_pad_id + 1  # XLM-R numbers positions after the padding id
    assert torch.equal(decoder.bert.embeddings.position_embeddings.weight[0], text.position_embeddings.weight[first])
    assert torch.equal(
        decoder.cls.predictions.transform.dense.weight, model.mlm_head.predictions.transform.dense.weight
    )
    assert decoder.cls.predictions.decoder.weight is decoder.bert.embeddings.word_embeddings.weight


# ---------------------------------------------------------------- end to end through the CLI


@pytest.mark.deepspeed
@pytest.mark.slow
def test_cclm_retrieval_zero_shot_scores_each_language_with_its_own_captions(cclm_folder, tiny_shards, tmp_path):
    model_dir, eval_dir, metrics = _finetune_and_evaluate(
        "retrieval", cclm_folder, tiny_shards, tmp_path, dataset="xflickrco", options=["k_test=8"]
    )
    assert isinstance(load_model_dir(model_dir), CCLM)
    recalls = ["txt_r1", "txt_r5", "img_r1", "img_r10", "r_mean"]
    _in_range(metrics, [f"test_{part}_{name}" for part in ("en", "xx", "avg") for name in recalls])
    assert metrics["test_avg_r_mean"] == metrics["test_xx_r_mean"]  # the only target language
    assert metrics["test_en_count"] == metrics["test_xx_count"] == metrics["test_count"] // 2
    rows = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]
    assert {row["language"] for row in rows} == {"en", "xx"}
    report = (eval_dir / "report.html").read_text()
    assert "test: per language" in report and "average (non-English)" in report

    # Records captioned in both languages at once (CCLM's multilingual COCO layout) split the same way.
    out = tmp_path / "multilingual"
    assert (
        main(
            [
                "evaluate",
                "--task",
                "retrieval",
                "--dataset",
                "multilingual_retrieval",
                "--model",
                str(model_dir),
                "--shards",
                str(tiny_shards),
                "--output",
                str(out),
                "--set",
                "k_test=8",
            ]
        )
        == 0
    )
    both = json.loads((out / "metrics.json").read_text())["metrics"]
    _in_range(both, ["test_en_r_mean", "test_xx_r_mean", "test_avg_r_mean"])
    assert both["test_en_count"] == both["test_xx_count"] == both["test_count"]


@pytest.mark.deepspeed
@pytest.mark.slow
def test_cclm_xvnli_zero_shot_then_few_shot(cclm_folder, tiny_shards, tmp_path):
    model_dir, _, metrics = _finetune_and_evaluate("xvnli", cclm_folder, tiny_shards, tmp_path)
    _in_range(metrics, ["dev_accuracy", "dev_en_accuracy", "test_en_accuracy", "test_xx_accuracy", "test_avg_accuracy"])
    assert load_model_dir(model_dir).task_heads.labels == ["contradiction", "entailment", "neutral"]

    few = tmp_path / "few-shot"
    assert (
        main(
            [
                "finetune",
                "--task",
                "xvnli",
                "--pretrained",
                str(model_dir),
                "--shards",
                str(tiny_shards),
                "--output",
                str(few),
                "--few-shot",
                "2",
                "--languages",
                "xx",
                "--set",
                "train.steps=2",
                "--set",
                "train.batch_size=2",
                "--set",
                "train.optim.warmup_steps=1",
            ]
        )
        == 0
    )
    summary = json.loads((few / "training.json").read_text())
    assert summary["steps"] == 2 and summary["final"]["loss"] == summary["final"]["loss"]
    # Few-shot continues from an English task model, never from a pre-trained one.
    assert (
        main(
            [
                "finetune",
                "--task",
                "xvnli",
                "--pretrained",
                str(cclm_folder),
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "wrong"),
                "--few-shot",
                "2",
                "--set",
                "train.batch_size=2",
            ]
        )
        == 2
    )


@pytest.mark.deepspeed
@pytest.mark.slow
@pytest.mark.parametrize(
    "task, dataset, splits, options, metric",
    [
        ("vqa", "xgqa", [], ["k_test=4"], "accuracy"),
        ("nlvr2", "marvl", ["test"], [], "accuracy"),
    ],
)
def test_cclm_xgqa_and_marvl_through_the_vqa_and_nlvr2_tasks(
    task, dataset, splits, options, metric, cclm_folder, tiny_shards, tmp_path
):
    _, _, metrics = _finetune_and_evaluate(
        task, cclm_folder, tiny_shards, tmp_path, dataset=dataset, splits=splits, options=options
    )
    _in_range(metrics, [f"test_{language}_{metric}" for language in ("en", "xx", "avg")])
