"""Resizing Swin relative position bias tables when the window changes (224 px window 7 → 384 px
window 12), as the official X-VLM loader does (``interpolate_relative_pos_embed`` in its
``models/swin_transformer.py``).

A Swin table has one row per 2-D offset inside a window, ``(2W-1)^2`` of them, and no extra
rows. The official function is BEiT's resize with no extra tokens: the source offsets sit on a
geometric series, a 2-D cubic spline (``interp2d``) goes through them and is read at the
target's integer offsets. So it shares ``position_resize``'s spline; only the table layout
differs. ``tests/fixtures/official_swin_window_resize.pt`` holds outputs of the official
function to check it against.
"""

from __future__ import annotations

import math

import torch

from x2vlm_core.models.position_resize import cubic_spline_weights, source_positions


def window_of_table(rows: int) -> int:
    """The window side ``W`` of a table with ``(2W-1)^2`` rows."""
    side = math.isqrt(rows)
    if side * side != rows or side % 2 == 0:
        raise ValueError(f"a Swin relative position bias table with {rows} rows fits no square window")
    return (side + 1) // 2


def resize_window_bias_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """``table`` ``[(2w-1)^2, heads]`` → ``[(2*window-1)^2, heads]``."""
    old_side, new_side = 2 * window_of_table(table.shape[0]) - 1, 2 * window - 1
    if old_side == new_side:
        return table
    if old_side < 4:
        raise ValueError(
            f"cannot resize a Swin bias table of a {(old_side + 1) // 2}-wide window: the cubic "
            "spline needs a window of at least 3"
        )
    heads = table.shape[1]
    nodes = torch.tensor(source_positions(old_side // 2, new_side // 2), dtype=torch.float64)
    targets = torch.arange(-(new_side // 2), new_side // 2 + 1, dtype=torch.float64)
    weights = cubic_spline_weights(nodes, targets).to(table.device)
    # Official: float32 values fitted in float64, read back as float32.
    values = table.float().double().T.reshape(heads, old_side, old_side)
    resized = (weights @ values @ weights.T).reshape(heads, new_side * new_side).T
    return resized.to(table.dtype)
