"""AdamW parameter groups and the linear warmup / linear decay schedule."""

from __future__ import annotations

import torch
from torch import nn

from x2vlm_core.errors import ConfigError
from x2vlm_core.train.config import OptimConfig


def _no_decay(name: str, param: nn.Parameter, keys: tuple[str, ...] = ()) -> bool:
    # Biases, LayerNorm weights and scalars (temp) are not decayed, nor the names a model exempts
    # (VLMo's shared position table: decay would move the rows a pre-training stage keeps frozen).
    return param.dim() <= 1 or name.endswith(".bias") or any(key in name for key in keys)


def param_groups(model: nn.Module, cfg: OptimConfig, new_prefixes: tuple[str, ...] = ()) -> list[dict]:
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    exempt = tuple(getattr(model, "no_weight_decay_keys", ()))
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (_no_decay(name, param, exempt), name.startswith(new_prefixes))
        groups.setdefault(key, []).append(param)
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            "lr": cfg.lr * (cfg.lr_mult if is_new else 1.0),
        }
        for (no_decay, is_new), params in sorted(groups.items())
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig, new_prefixes: tuple[str, ...] = ()) -> torch.optim.AdamW:
    fused = torch.cuda.is_available()
    if len(cfg.betas) != 2:
        raise ConfigError(f"optim.betas must be two numbers (beta1, beta2), got {cfg.betas}")
    beta1, beta2 = cfg.betas
    return torch.optim.AdamW(
        param_groups(model, cfg, new_prefixes), lr=cfg.lr, betas=(beta1, beta2), fused=fused or None
    )


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
