"""VLMo and CCLM through the one pre-training stage (CLI → run_pretrain → run_training with DeepSpeed),
and sentence pairs through the prepare-data Beam job."""

import json

import pytest
import torch

from x2vlm_core.cli import main
from x2vlm_core.config_io import from_dict
from x2vlm_core.data.shards import iter_shard_samples, list_shards
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, model_config
from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.families.vlmo.model import VLMo
from x2vlm_core.release.model_folder import load_model_dir
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.optim import param_groups
from x2vlm_core.train.pretrain import check_pretrain_config

SMALL = [
    "--set",
    "train.steps=2",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.log_every=1",
    "--set",
    "train.tensorboard=false",
    "--set",
    "train.shuffle_buffer=8",
]


def _final(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


@pytest.mark.deepspeed
@pytest.mark.slow
def test_vlmo_pretrains_through_the_cli_and_reloads(tiny_shards, tmp_path, capsys):
    assert (
        main(
            ["pretrain", "--model", "vlmo_tiny", "--shards", str(tiny_shards), "--output", str(tmp_path / "vl"), *SMALL]
        )
        == 0
    )
    final = _final(capsys)
    assert {"itc", "itm", "mlm"} <= set(final) and all(v == v for v in final.values())
    model = load_model_dir(tmp_path / "vl")
    assert isinstance(model, VLMo)

    # The text stage starts from the vl model, trains text-only MLM, and leaves the image side as it was.
    assert (
        main(
            [
                "pretrain",
                "--model",
                "vlmo_tiny",
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "text"),
                "--init",
                str(tmp_path / "vl"),
                *SMALL,
                "--set",
                "train.stage=text",
                "--set",
                "train.optim.lr=0.01",
                "--set",
                "train.optim.warmup_steps=1",
                "--set",
                "train.data.text.datasets=[pretrain_parallel_text]",
            ]
        )
        == 0
    )
    assert set(_final(capsys)) >= {"text_mlm"}
    after = load_model_dir(tmp_path / "text")
    before, trained = model.state_dict(), after.state_dict()
    for name in ("transformer.blocks.0.attn.qkv.weight", "transformer.blocks.0.mlp_imag.fc1.weight"):
        torch.testing.assert_close(trained[name], before[name])
    assert not torch.equal(
        trained["transformer.blocks.0.mlp_text.fc1.weight"], before["transformer.blocks.0.mlp_text.fc1.weight"]
    )


@pytest.mark.deepspeed
@pytest.mark.slow
def test_cclm_pretrains_with_a_tokenizer_trained_on_the_shards(tiny_shards, tmp_path, capsys):
    assert main(["train-tokenizer", "--shards", str(tiny_shards), "--output", str(tmp_path / "tok")]) == 0
    tokenizer = _final(capsys)
    assert tokenizer["datasets"] == ["pretrain_multilingual", "pretrain_parallel_text"]
    assert tokenizer["entries"] <= model_config("cclm_tiny").vocab_size
    assert (
        main(
            [
                "pretrain",
                "--model",
                "cclm_tiny",
                "--set",
                f"model.tokenizer={tmp_path / 'tok'}",
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "cclm"),
                *SMALL,
                "--set",
                "train.region_batch_images=2",
                "--set",
                "train.region_batch_size=4",
                "--set",
                "train.activation_checkpointing=true",
            ]
        )
        == 0
    )
    final = _final(capsys)
    # All three of CCLM's streams: multilingual captions, regions, sentence pairs.
    assert {"itc", "itm", "mlm", "region_giou", "ttc", "ttm", "cmlm"} <= set(final)
    model = load_model_dir(tmp_path / "cclm")
    assert isinstance(model, CCLM) and 0.001 <= model.temp.item() <= 0.5


@pytest.mark.parametrize(
    "model,settings,message",
    [
        ("vlmo_tiny", {"data": {"region_text": {"datasets": ["pretrain_region_text"]}}}, "cannot train on it"),
        ("vlmo_tiny", {"stage": "image"}, "start the text or vl stage from a BEiT checkpoint"),
        ("vlmo_tiny", {"stage": "text"}, "no pre-training stream is on"),
        ("x2vlm_tiny", {"stage": "text"}, "applies to VLMo models only"),
        ("x2vlm_tiny", {"data": {"parallel_text": {"datasets": ["pretrain_parallel_text"]}}}, "cannot train on it"),
        ("cclm_tiny", {"data": {"video_text": {"datasets": ["pretrain_video_text"]}}}, "cannot train on it"),
    ],
)
def test_streams_a_family_cannot_train_on_are_refused(model, settings, message):
    with pytest.raises(ConfigError, match=message):
        check_pretrain_config(model_config(model), from_dict(TrainConfig, {"batch_size": 8, **settings}), 1)


def test_vlmo_position_table_is_not_weight_decayed():
    model = create_model("vlmo_tiny")
    table = model.relative_position_bias_table
    decayed = [
        p for group in param_groups(model, TrainConfig().optim) if group["weight_decay"] > 0 for p in group["params"]
    ]
    assert table.dim() == 2 and all(p is not table for p in decayed)
    assert any(p is model.transformer.blocks[0].attn.qkv.weight for p in decayed)


@pytest.mark.beam
@pytest.mark.slow
def test_sentence_pairs_go_through_the_beam_job_without_deduplication_by_image(tmp_path):
    from x2vlm_core.dataprep.beam_job import run_prepare_data

    pairs = [
        "1.2\ta red circle\tkalo mine",
        "1.1\ta blue square\tsati vozeru",
        "0.9\ttoo low\tlolo",
        "1.3\ta red circle\tkalo mine",
        "1.2\t \tempty side",
        "1.1\ttwo shapes\tvoze paka",
    ]
    data = tmp_path / "WikiMatrix.en-xx.tsv"
    data.write_text("".join(line + "\n" for line in pairs), encoding="utf-8")
    sources = [{"format": "parallel_tsv", "dataset": "pretrain_parallel_text", "data": str(data), "min_score": 1.0}]
    summary = run_prepare_data(sources, tmp_path / "out", shard_size=2)
    assert summary["read"] == 6 == summary["total"] + summary["rejected"]
    reasons = sorted(
        json.loads(line)["reason"].split(":")[0]
        for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    )
    assert reasons == ["below_min_score", "duplicate_of", "empty_caption"]  # same texts, not same (no) image
    samples = list(iter_shard_samples(list_shards(tmp_path / "out", "pretrain_parallel_text", "train")))
    assert len(samples) == 3 and all(s["images"] == [] for s in samples)
    assert {(s["meta"]["source_text"], s["meta"]["target_language"]) for s in samples} == {
        ("a red circle", "xx"),
        ("a blue square", "xx"),
        ("two shapes", "xx"),
    }
