"""The DeepSpeed engine: config generated from our TrainConfig, then initialised."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from x2vlm_core.errors import ConfigError
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.optim import build_optimizer, linear_warmup_decay

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"train.precision {cfg.precision!r} is not one of {', '.join(PRECISIONS)}")
    if cfg.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return cfg.precision


def deepspeed_config(cfg: TrainConfig, micro_batch: int, precision: str) -> dict[str, Any]:
    if cfg.zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"train.zero_stage must be 0, 1, 2 or 3, got {cfg.zero_stage}")
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": cfg.gradient_accumulation,
        "gradient_clipping": cfg.optim.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10**9,  # we log ourselves
        "wall_clock_breakdown": False,
    }


def build_engine(model: nn.Module, cfg: TrainConfig, device: torch.device, micro_batch: int,
                 new_prefixes: tuple[str, ...] = ()):
    import deepspeed

    precision = resolve_precision(cfg, device)
    optimizer = build_optimizer(model, cfg.optim, new_prefixes)
    scheduler = linear_warmup_decay(optimizer, min(cfg.optim.warmup_steps, cfg.steps), cfg.steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model.to(device), optimizer=optimizer, lr_scheduler=scheduler,
        config=deepspeed_config(cfg, micro_batch, precision))
    return engine
