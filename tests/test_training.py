"""The real training path: DeepSpeed engine, objectives, model folders, checkpoints, exact resume."""

import json
import shutil
import struct

import pytest
import torch

from x2vlm_core.config_io import from_dict
from x2vlm_core.errors import ConfigError
from x2vlm_core.evaluation.run import run_evaluation
from x2vlm_core.families import model_config
from x2vlm_core.release.model_folder import load_model_dir
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.engine import deepspeed_config, micro_batch_size
from x2vlm_core.train.finetune import run_finetune
from x2vlm_core.train.pretrain import check_pretrain_config, run_pretrain

TINY_TRAIN = dict(batch_size=8, region_batch_images=4, region_batch_size=8, log_every=2, shuffle_buffer=16)
LOSS_TERMS = ("itc", "itm", "mlm", "region_itc", "region_itm", "region_mlm", "region_bbox", "region_giou")


def _train_cfg(**kw) -> TrainConfig:
    return from_dict(TrainConfig, {**TINY_TRAIN, **kw})


def _scalar_tags(event_dir) -> set[str]:
    """Tags of the scalars in TensorBoard event files (TFRecord framing around Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    tags = set()
    for path in event_dir.iterdir():
        data = path.read_bytes()
        while data:
            (length,) = struct.unpack("<Q", data[:8])
            event = Event.FromString(data[12 : 12 + length])
            tags |= {value.tag for value in event.summary.value}
            data = data[12 + length + 4 :]
    return tags


@pytest.mark.deepspeed
def test_pretrain_writes_a_loadable_model_checkpoints_and_logs(tiny_shards, tmp_path):
    cfg = _train_cfg(steps=4, save_every=2, log_every=1, optim={"warmup_steps": 1})
    summary = run_pretrain(model_config("x2vlm_tiny"), cfg, tiny_shards, tmp_path / "model", tmp_path / "ckpt")
    assert summary["steps"] == 4 and summary["resumed_from_step"] == 0 and len(summary["history"]) == 4
    json.dumps(summary)  # it becomes Model artifact metadata
    final = summary["final"]
    for name in (*LOSS_TERMS, "loss", "lr", "samples_per_s", "tokens_per_s"):
        assert name in final and final[name] == final[name], name  # present and not NaN
    assert final["samples_per_s"] > 0 and final["tokens_per_s"] > final["samples_per_s"]
    model = load_model_dir(tmp_path / "model")
    assert 0.001 <= model.temp.item() <= 0.5
    assert {f"pretrain/{name}" for name in ("loss", "itc", "region_giou", "lr", "tokens_per_s")} <= _scalar_tags(
        tmp_path / "model" / "tensorboard"
    )
    for tag in ("step2", "step4"):  # each complete: marker, RNG states, a consolidated model folder
        folder = tmp_path / "ckpt" / tag
        assert json.loads((folder / "complete.json").read_text())["micro_batches_consumed"] == int(tag[4:])
        assert (folder / "rng-rank0.json").is_file()
        load_model_dir(folder / "model")
    assert (tmp_path / "ckpt" / "latest").read_text() == "step4"

    # Asking for more steps continues from the last checkpoint instead of starting over.
    summary = run_pretrain(
        model_config("x2vlm_tiny"),
        _train_cfg(steps=6, optim={"warmup_steps": 1}),
        tiny_shards,
        tmp_path / "model2",
        tmp_path / "ckpt",
    )
    assert summary["resumed_from_step"] == 4 and summary["history"][-1]["step"] == 6
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step*")) == ["step4", "step6"]  # keep_checkpoints=2


@pytest.mark.deepspeed
def test_resume_is_exact_and_never_uses_a_half_written_checkpoint(tiny_shards, tmp_path):
    """Losses after resuming equal the uninterrupted run's; a save without its marker is ignored."""
    cfg = _train_cfg(steps=5, save_every=2, log_every=1, keep_checkpoints=0, tensorboard=False)
    reference = run_pretrain(model_config("x2vlm_tiny"), cfg, tiny_shards, tmp_path / "a", tmp_path / "ckpt_a")

    # What a kill during the step-4 save leaves behind: step 2 complete, step 4 without its marker
    # (DeepSpeed's own `latest` already naming it), nothing after.
    shutil.copytree(tmp_path / "ckpt_a", tmp_path / "ckpt_b", ignore=shutil.ignore_patterns("step5"))
    (tmp_path / "ckpt_b" / "step4" / "complete.json").unlink()
    (tmp_path / "ckpt_b" / "step4" / "mp_rank_00_model_states.pt").write_bytes(b"half")
    (tmp_path / "ckpt_b" / "latest").write_text("step4")
    resumed = run_pretrain(model_config("x2vlm_tiny"), cfg, tiny_shards, tmp_path / "b", tmp_path / "ckpt_b")

    assert resumed["resumed_from_step"] == 2
    assert [r["step"] for r in resumed["history"]] == [3, 4, 5]
    expected = {r["step"]: r for r in reference["history"]}
    for record in resumed["history"]:
        for name in (*LOSS_TERMS, "loss", "lr"):
            assert record[name] == pytest.approx(expected[record["step"]][name], rel=1e-6, abs=1e-7), name
    assert not (tmp_path / "ckpt_b" / "step4" / "mp_rank_00_model_states.pt").read_bytes() == b"half"


@pytest.mark.deepspeed
def test_temperature_stays_clamped_in_the_optimizer_master_copy(tiny_shards, tmp_path):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    run_pretrain(
        model_config("x2vlm_tiny", temp=0.9),
        _train_cfg(steps=1, zero_stage=2, tensorboard=False),
        tiny_shards,
        tmp_path / "m",
        tmp_path / "c",
    )
    master = get_fp32_state_dict_from_zero_checkpoint(str(tmp_path / "c"), tag="step1")
    # Clamped to 0.5 before the step (as the official loop does), then moved by one optimizer step only.
    assert master["temp"].item() == pytest.approx(0.5, abs=1e-3)
    assert load_model_dir(tmp_path / "m").temp.item() <= 0.5


@pytest.mark.deepspeed
def test_zero3_in_bf16_still_hands_over_a_full_fp32_model(tiny_shards, tmp_path):
    cfg = _train_cfg(steps=1, zero_stage=3, precision="bf16", tensorboard=False)
    run_pretrain(model_config("x2vlm_tiny"), cfg, tiny_shards, tmp_path / "m", tmp_path / "c")
    model = load_model_dir(tmp_path / "m")  # every weight present, not the partitioned placeholders
    assert all(p.dtype == torch.float32 and p.numel() for p in model.parameters())
    load_model_dir(tmp_path / "c" / "step1" / "model")


@pytest.mark.deepspeed
def test_activation_checkpointing_and_accumulation_keep_the_losses(tiny_shards, tmp_path):
    runs = {}
    for name, extra in {
        "plain": {},
        "recompute": {"activation_checkpointing": True},
        "accumulate": {"gradient_accumulation": 2, "batch_size": 16, "region_batch_size": 16, "region_batch_images": 8},
    }.items():
        cfg = _train_cfg(steps=2, log_every=1, tensorboard=False, **extra)
        mcfg = model_config("x2vlm_tiny", text={"hidden_dropout": 0.0, "attention_dropout": 0.0})
        runs[name] = run_pretrain(mcfg, cfg, tiny_shards, tmp_path / name, tmp_path / f"{name}.ckpt")["history"]
    for step in range(2):
        for name in ("itc", "mlm", "region_bbox"):  # recomputation changes nothing
            assert runs["recompute"][step][name] == pytest.approx(runs["plain"][step][name], rel=1e-4)
    # Two micro-steps of 8 per optimizer step: steps and the schedule count optimizer steps.
    assert [r["lr"] for r in runs["accumulate"]] == [r["lr"] for r in runs["plain"]]
    marker = json.loads((tmp_path / "accumulate.ckpt" / "step2" / "complete.json").read_text())
    assert marker["micro_batches_consumed"] == 4 and marker["micro_batch"] == 8


@pytest.mark.deepspeed
@pytest.mark.slow
def test_compiled_blocks_train_to_the_eager_losses(tiny_shards, tmp_path):
    """train.compile=on under DeepSpeed: same losses as eager, and the checkpoint keeps its names."""
    torch._dynamo.reset()
    runs = {}
    for name, setting in (("eager", "off"), ("compiled", "on")):
        cfg = _train_cfg(steps=2, log_every=1, tensorboard=False, compile=setting)
        mcfg = model_config("x2vlm_tiny", text={"hidden_dropout": 0.0, "attention_dropout": 0.0})
        runs[name] = run_pretrain(mcfg, cfg, tiny_shards, tmp_path / name, tmp_path / f"{name}.ckpt")["history"]
    torch._dynamo.reset()
    for step in range(2):
        for name in ("itc", "mlm", "region_bbox"):
            assert runs["compiled"][step][name] == pytest.approx(runs["eager"][step][name], rel=1e-4)
    load_model_dir(tmp_path / "compiled")


@pytest.mark.deepspeed
def test_stop_itm_after_drops_the_itm_terms(tiny_shards, tmp_path):
    cfg = _train_cfg(steps=2, stop_itm_after=1, log_every=1, tensorboard=False)
    summary = run_pretrain(model_config("x2vlm_tiny"), cfg, tiny_shards, tmp_path / "m", tmp_path / "c")
    assert "itm" not in summary["final"] and "region_itm" not in summary["final"]


def test_deepspeed_json_is_generated_from_our_config_and_overridable():
    cfg = _train_cfg(
        zero_stage=2,
        gradient_accumulation=2,
        optim={"grad_clip": 0.5},
        deepspeed={"zero_optimization": {"overlap_comm": True}, "wall_clock_breakdown": True},
    )
    config = deepspeed_config(cfg, micro_batch=4, precision="bf16")
    assert config["zero_optimization"] == {"stage": 2, "overlap_comm": True}
    assert config["gradient_accumulation_steps"] == 2 and config["gradient_clipping"] == 0.5
    assert config["bf16"] == {"enabled": True} and config["wall_clock_breakdown"] is True
    assert deepspeed_config(_train_cfg(), 4, "fp32")["bf16"] == {"enabled": False}


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"zero_stage": 4}, "ZeRO stage 4 is not supported; use train.zero_stage 1 or 2"),
        ({"deepspeed": {"zero_optimization": {"stage": 0}}}, "ZeRO stage 0 is not supported"),
        ({"deepspeed": {"optimizer": {"type": "Adam"}}}, "train.deepspeed may not set ['optimizer']"),
        ({"deepspeed": {"fp16": {"enabled": True}}}, "fp16 is not supported"),
        ({"precision": "fp16"}, "train.precision 'fp16' is not one of auto, fp32, bf16"),
        ({"compile": "yes"}, "train.compile 'yes' is not one of auto, on, off"),
    ],
)
def test_unsupported_engine_settings_are_refused(settings, message):
    from x2vlm_core.train.engine import resolve_compile, resolve_precision

    cfg = _train_cfg(**settings)
    with pytest.raises(ConfigError) as error:
        resolve_precision(cfg, torch.device("cpu"))
        resolve_compile(cfg, torch.device("cpu"))
        deepspeed_config(cfg, 4, "fp32")
    assert message in str(error.value)


@pytest.mark.parametrize(
    "settings,model,world_size,message",
    [
        ({"batch_size": 6}, {}, 4, "train.batch_size=6 is not divisible by world size 4 x gradient_accumulation 1 = 4"),
        ({"region_batch_size": 9}, {}, 2, "train.region_batch_size=9 is not divisible by world size 2"),
        ({"batch_size": 8, "gradient_accumulation": 3}, {}, 1, "use a multiple of 3"),
        ({"region_batch_size": 40}, {}, 1, "does not fit in region_batch_images=4 x max_regions=5 texts"),
        ({"data": {"video_text": {"datasets": ["pretrain_video_text"]}}}, {}, 1, "has no frames (frame_len 0)"),
        ({"data": {"image_text": {"datasets": ["a", "b"], "ratios": [1]}}}, {}, 1, "2 datasets but 1 ratios"),
        ({"data": {"image_text": {"datasets": []}, "region_text": {"datasets": []}}}, {}, 1, "no pre-training stream"),
        ({"augment": {"crop_scale": [0.5, 0.2]}}, {}, 1, "crop_scale [0.5, 0.2] must be [low, high]"),
    ],
)
def test_configs_that_do_not_fit_are_refused(settings, model, world_size, message):
    with pytest.raises(ConfigError) as error:
        check_pretrain_config(model_config("x2vlm_tiny", **model), _train_cfg(**settings), world_size)
    assert message in str(error.value)
    assert micro_batch_size(32, _train_cfg(gradient_accumulation=2), 4) == 4


@pytest.mark.deepspeed
@pytest.mark.parametrize("task,metric", [("retrieval", "test_txt_r1"), ("grounding", "val_acc_iou50")])
def test_finetune_then_evaluate(task, metric, tiny_shards, tmp_path):
    run_pretrain(
        model_config("x2vlm_tiny"),
        _train_cfg(steps=1, tensorboard=False),
        tiny_shards,
        tmp_path / "pre",
        tmp_path / "c0",
    )
    run_finetune(task, tmp_path / "pre", _train_cfg(steps=2), tiny_shards, tmp_path / "ft", tmp_path / "c1")
    metrics = run_evaluation(task, tmp_path / "ft", tiny_shards, tmp_path / "eval")
    assert 0.0 <= metrics[metric] <= 1.0
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written == {"task": task, "metrics": metrics}


def test_gathered_contrastive_loss_matches_single_process():
    """Without a process group the gather is the identity, and the loss is plain InfoNCE."""
    from x2vlm_core.models.losses import contrastive_loss

    image, text = (
        torch.nn.functional.normalize(torch.randn(4, 8), dim=-1),
        torch.nn.functional.normalize(torch.randn(4, 8), dim=-1),
    )
    temp = torch.tensor([0.07])
    logits = image @ text.t() / temp
    labels = torch.arange(4)
    expected = (
        torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.t(), labels)
    ) / 2
    torch.testing.assert_close(contrastive_loss(image, text, temp), expected)


@pytest.mark.deepspeed
def test_cli_pretrain_from_a_config_file_alone(tiny_shards, tmp_path, capsys):
    from x2vlm_core.cli import main

    config = tmp_path / "pretrain.yaml"
    config.write_text(
        f"model: x2vlm_tiny\ntrain:\n  steps: 1\n  batch_size: 8\n  region_batch_images: 4\n"
        f"  region_batch_size: 8\n  tensorboard: false\n  data: {{shards: {tiny_shards}}}\n"
    )
    assert main(["pretrain", "--config", str(config), "--output", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "training.json").read_text())["steps"] == 1
    capsys.readouterr()

    (tmp_path / "empty").mkdir()
    assert (
        main(
            ["pretrain", "--config", str(config), "--shards", str(tmp_path / "empty"), "--output", str(tmp_path / "m2")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "index.json does not exist; run prepare-data" in err
    assert (
        main(["pretrain", "--config", str(config), "--output", str(tmp_path / "m3"), "--set", "train.zero_stage=4"])
        == 2
    )
    assert "ZeRO stage 4 is not supported" in capsys.readouterr().err


@pytest.mark.deepspeed
def test_video_text_stream_trains_on_prepared_clips(tiny_shards, tmp_path):
    cfg = _train_cfg(
        steps=1,
        log_every=1,
        tensorboard=False,
        video_batch_size=2,
        data={"video_text": {"datasets": ["pretrain_video_text"], "loss_weight": 0.5}},
    )
    summary = run_pretrain(model_config("x2vlm_tiny", frame_len=3), cfg, tiny_shards, tmp_path / "m", tmp_path / "c")
    final = summary["final"]
    assert {"video_itc", "video_itm", "video_mlm", "itc", "region_giou"} <= set(final)
    image_and_region = sum(v for k, v in final.items() if k in LOSS_TERMS)
    video = final["video_itc"] + final["video_itm"] + final["video_mlm"]
    assert final["loss"] == pytest.approx(image_and_region + 0.5 * video, rel=1e-5)  # the stream's loss_weight


def test_hard_negatives_never_share_the_positive_text():
    from x2vlm_core.models.losses import sample_hard_negatives

    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    idx = torch.tensor([7, 7, 3, 3, 3, 9])  # rows 0-1 and 2-4 hold the same phrase
    for _ in range(20):
        image_neg, text_neg = sample_hard_negatives(feats, feats, torch.tensor(0.07), idx)
        assert (idx[image_neg] != idx).all() and (idx[text_neg] != idx).all()
    # One phrase everywhere: nothing but duplicates to draw from, so any other row rather than an error.
    image_neg, _ = sample_hard_negatives(feats, feats, torch.tensor(0.07), torch.zeros(6, dtype=torch.long))
    assert (image_neg != torch.arange(6)).all()


def test_region_rows_with_the_same_phrase_share_an_id(tiny_shards):
    import random

    from x2vlm_core.data.augment import AugmentConfig
    from x2vlm_core.data.collate import TextEncoder, pretrain_region_batch
    from x2vlm_core.data.masking import MaskingConfig
    from x2vlm_core.data.shards import iter_shard_samples, list_shards

    cfg = model_config("x2vlm_tiny")
    samples = list(iter_shard_samples(list_shards(str(tiny_shards), "pretrain_region_text", "train")))
    batch = pretrain_region_batch(
        random.Random(0).sample(samples, 4),
        text=TextEncoder(cfg.tokenizer, cfg.max_tokens),
        image_res=cfg.image_res,
        grid=cfg.num_patches_side,
        max_regions=5,
        batch_size=24,
        masking=MaskingConfig(),
        augment=AugmentConfig(),
    )
    ids = batch["text_ids"].tolist()
    for i in range(24):  # 24 rows from 4 images: some repeat to fill the exact size
        for j in range(24):
            assert (ids[i] == ids[j]) == bool(batch["idx"][i] == batch["idx"][j])
    assert len(set(batch["idx"].tolist())) < 24


def test_rows_of_one_image_or_one_text_are_positives_of_each_other():
    from x2vlm_core.data.collate import positive_ids

    ids = positive_ids(
        ["a", "b", "c", "a", "d", "e"],
        ["A red square", "a red square.", "a blue circle", "a green star", "a green star", "a red circle"],
        max_tokens=24,
    ).tolist()
    # 0-1 read the same, 0-3 are one image, 3-4 read the same: one group; 2 and 5 stand alone.
    assert ids[0] == ids[1] == ids[3] == ids[4]
    assert len({ids[0], ids[2], ids[5]}) == 3
    # The id depends on the text, not the row, so the same caption agrees across ranks of a gathered batch.
    assert positive_ids(["x"], ["a blue circle"], 24).tolist() == [ids[2]]


def test_random_itm_negatives_ignore_similarity_but_never_draw_a_positive():
    from x2vlm_core.models.losses import sample_hard_negatives

    torch.manual_seed(0)
    # Row 1 is row 0's near-duplicate: hard sampling almost always draws it, random sampling a third of the time.
    feats = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [-1.0, 0.0]]), dim=-1)
    hard = [int(sample_hard_negatives(feats, feats, torch.tensor(0.01))[1][0]) for _ in range(300)]
    random_ = [int(sample_hard_negatives(feats, feats, torch.tensor(0.01), hard=False)[1][0]) for _ in range(300)]
    assert hard.count(1) > 290
    assert 60 < random_.count(1) < 140 and 0 not in random_


def test_itm_negatives_must_be_hard_or_random():
    from x2vlm_core.train.engine import check_itm_negatives

    with pytest.raises(ConfigError, match="train.itm_negatives 'easy' is not one of hard, random"):
        check_itm_negatives(from_dict(TrainConfig, {"itm_negatives": "easy"}))
