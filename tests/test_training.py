"""The real training path: DeepSpeed engine, objectives, model folders, resume, torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch

from x2vlm_core.checkpoint import load_model_dir
from x2vlm_core.evaluation import run_evaluation
from x2vlm_core.models.registry import model_config
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.finetune import run_finetune
from x2vlm_core.train.pretrain import run_pretrain

TINY_TRAIN = dict(batch_size=8, region_batch_images=4, log_every=2, shuffle_buffer=16)


def _train_cfg(**kw) -> TrainConfig:
    from x2vlm_core.config_io import from_dict

    return from_dict(TrainConfig, {**TINY_TRAIN, **kw})


def test_pretrain_writes_a_loadable_model_and_resumes(tiny_shards, tmp_path):
    cfg = _train_cfg(steps=4, save_every=2, optim={"warmup_steps": 1})
    summary = run_pretrain(model_config("x2vlm_tiny"), cfg, tiny_shards, tmp_path / "model", tmp_path / "ckpt")
    assert summary["steps"] == 4 and summary["resumed_from_step"] == 0
    losses = summary["final"]
    for name in ("itc", "itm", "mlm", "region_itc", "region_itm", "region_mlm", "region_bbox", "region_giou"):
        assert name in losses and losses[name] == losses[name]  # present and not NaN
    model = load_model_dir(tmp_path / "model")
    assert model.temp.item() == pytest.approx(model.temp.clamp(0.001, 0.5).item())
    assert (tmp_path / "ckpt" / "latest").read_text().strip() == "step2"

    # Asking for more steps continues from the saved step instead of starting over.
    summary = run_pretrain(model_config("x2vlm_tiny"), _train_cfg(steps=6, optim={"warmup_steps": 1}),
                           tiny_shards, tmp_path / "model2", tmp_path / "ckpt")
    assert summary["resumed_from_step"] == 2 and summary["history"][-1]["step"] == 6


def test_stop_itm_after_drops_the_itm_terms(tiny_shards, tmp_path):
    summary = run_pretrain(model_config("x2vlm_tiny"), _train_cfg(steps=2, stop_itm_after=1),
                           tiny_shards, tmp_path / "m", tmp_path / "c")
    assert "itm" not in summary["final"] and "region_itm" not in summary["final"]


@pytest.mark.parametrize("task,metric", [("retrieval", "test_txt_r1"), ("grounding", "val_acc_iou50")])
def test_finetune_then_evaluate(task, metric, tiny_shards, tmp_path):
    run_pretrain(model_config("x2vlm_tiny"), _train_cfg(steps=1), tiny_shards, tmp_path / "pre", tmp_path / "c0")
    run_finetune(task, tmp_path / "pre", _train_cfg(steps=2), tiny_shards, tmp_path / "ft", tmp_path / "c1")
    metrics = run_evaluation(task, tmp_path / "ft", tiny_shards, tmp_path / "eval")
    assert 0.0 <= metrics[metric] <= 1.0
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written == {"task": task, "metrics": metrics}
    lines = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) >= metrics[metric.split("_")[0] + "_count"]


@pytest.mark.slow
def test_two_process_deepspeed_under_torchrun(tiny_shards, tmp_path):
    """gloo on CPU, 2 ranks: ITC gathers features across ranks; rank 0 writes the model."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "x2vlm_core.cli", "pretrain", "--shards", str(tiny_shards), "--output", str(tmp_path / "m"),
               "--model", "x2vlm_tiny", "--set", "train.steps=3", "--set", "train.batch_size=4",
               "--set", "train.region_batch_images=2", "--set", "train.log_every=1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "m" / "training.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    load_model_dir(tmp_path / "m")


def test_gathered_contrastive_loss_matches_single_process():
    """Without a process group the gather is the identity, and the loss is plain InfoNCE."""
    from x2vlm_core.models.losses import contrastive_loss

    image, text = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1), torch.nn.functional.normalize(
        torch.randn(4, 8), dim=-1)
    temp = torch.tensor([0.07])
    logits = image @ text.t() / temp
    labels = torch.arange(4)
    expected = (torch.nn.functional.cross_entropy(logits, labels)
                + torch.nn.functional.cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(contrastive_loss(image, text, temp), expected)
