"""The DeepSpeed engine: its JSON config generated from our TrainConfig (and overridable), then initialised."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from x2vlm_core.config_io import deep_merge
from x2vlm_core.errors import ConfigError, shown
from x2vlm_core.models.blocks import transformer_blocks
from x2vlm_core.models.compile import compile_encoders
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.optim import build_optimizer, linear_warmup_decay

PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_CHOICES = ("auto", "on", "off")
ITM_NEGATIVES = ("hard", "random")
ZERO_STAGES = (1, 2, 3)
# These belong to our config (train.optim, train.batch_size, ...); set there, not in train.deepspeed.
_OWNED_KEYS = (
    "optimizer",
    "scheduler",
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
)


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"train.precision {cfg.precision!r} is not one of {', '.join(PRECISIONS)}")
    if cfg.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return cfg.precision


def resolve_compile(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.compile not in COMPILE_CHOICES:
        raise ConfigError(f"train.compile {cfg.compile!r} is not one of {', '.join(COMPILE_CHOICES)}")
    return cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")


def check_itm_negatives(cfg: TrainConfig) -> str:
    if cfg.itm_negatives not in ITM_NEGATIVES:
        raise ConfigError(f"train.itm_negatives {cfg.itm_negatives!r} is not one of {', '.join(ITM_NEGATIVES)}")
    return cfg.itm_negatives


def micro_batch_size(batch: int, cfg: TrainConfig, world_size: int, what: str = "train.batch_size") -> int:
    """Per-rank, per-micro-step share of a global batch; refuses batches that do not split evenly."""
    parts = world_size * cfg.gradient_accumulation
    if cfg.gradient_accumulation < 1:
        raise ConfigError(f"train.gradient_accumulation must be >= 1, got {cfg.gradient_accumulation}")
    if batch < parts or batch % parts:
        raise ConfigError(
            f"{what}={batch} is not divisible by world size {world_size} x gradient_accumulation "
            f"{cfg.gradient_accumulation} = {parts}; use a multiple of {parts}"
        )
    return batch // parts


def deepspeed_config(cfg: TrainConfig, micro_batch: int, precision: str) -> dict[str, Any]:
    """The DeepSpeed JSON: generated from ``cfg``, then ``cfg.deepspeed`` merged over it."""
    if not isinstance(cfg.deepspeed, dict):
        raise ConfigError(f"train.deepspeed must be a mapping of DeepSpeed settings, got {shown(cfg.deepspeed)}")
    owned = sorted(set(cfg.deepspeed) & set(_OWNED_KEYS))
    if owned:
        raise ConfigError(
            f"train.deepspeed may not set {owned}: they come from train.optim, train.batch_size "
            "and train.gradient_accumulation; set those instead"
        )
    generated = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": cfg.gradient_accumulation,
        "gradient_clipping": cfg.optim.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10**9,  # we log ourselves
        "wall_clock_breakdown": False,
    }
    config = deep_merge(generated, cfg.deepspeed)
    stage = config.get("zero_optimization", {}).get("stage")
    if stage not in ZERO_STAGES:
        raise ConfigError(
            f"ZeRO stage {shown(stage)} is not supported; use train.zero_stage 1 or 2 (3 also works, "
            "slower at small scale)"
        )
    if config.get("fp16", {}).get("enabled"):
        raise ConfigError(
            "fp16 is not supported (X²-VLM's losses overflow without careful scaling); use train.precision=bf16"
        )
    return config


def _checkpointed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every transformer block in backward instead of keeping its activations; returns the count."""
    blocks = transformer_blocks(model)
    for block in blocks:
        block.forward = _checkpointed(block.forward)
    return len(blocks)


def build_engine(
    model: nn.Module, cfg: TrainConfig, device: torch.device, micro_batch: int, new_prefixes: tuple[str, ...] = ()
):
    import deepspeed

    precision = resolve_precision(cfg, device)
    config = deepspeed_config(cfg, micro_batch, precision)
    if cfg.activation_checkpointing:
        enable_activation_checkpointing(model)
    if resolve_compile(cfg, device):
        compile_encoders(model)
    optimizer = build_optimizer(model, cfg.optim, new_prefixes)
    scheduler = linear_warmup_decay(optimizer, min(cfg.optim.warmup_steps, cfg.steps), cfg.steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model.to(device), optimizer=optimizer, lr_scheduler=scheduler, config=config
    )
    return engine
