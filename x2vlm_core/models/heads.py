"""Head shapes the families share: the official ITM/box MLP, and the ITC temperature's range."""

from __future__ import annotations

from torch import nn

TEMP_RANGE = (0.001, 0.5)  # the learnable ITC temperature is clamped to this (official)


def build_mlp(dim: int, out: int) -> nn.Sequential:
    """Linear → LayerNorm → GELU → Linear, the official ITM/box head (keys 0, 1, 3)."""
    return nn.Sequential(nn.Linear(dim, dim * 2), nn.LayerNorm(dim * 2), nn.GELU(), nn.Linear(dim * 2, out))
