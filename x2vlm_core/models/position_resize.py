"""Resizing BEiT-2 relative position bias tables when a checkpoint meets another image size.

A table holds one row per 2-D patch offset, ``(2G-1)^2`` of them for a ``G x G`` patch grid,
then 3 rows for the CLS token. Going from 224 px (G=14) to 384 px (G=24) the offsets
grid is resampled bicubically with its corners pinned, so offset 0 keeps its bias and the
farthest offset in the old grid maps to the farthest in the new one; the CLS rows are kept.
(The official loader does this with ``scipy.interpolate.interp2d``, which SciPy has removed.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CLS_ROWS = 3


def grid_of_table(rows: int) -> int:
    """The patch grid side ``G`` of a table with ``(2G-1)^2 + 3`` rows."""
    side = math.isqrt(rows - CLS_ROWS)
    if side * side != rows - CLS_ROWS or side % 2 == 0:
        raise ValueError(f"a relative position bias table with {rows} rows fits no square patch grid")
    return (side + 1) // 2


def resize_relative_position_bias_table(table: torch.Tensor, grid: int) -> torch.Tensor:
    """``table`` ``[(2g-1)^2 + 3, heads]`` → ``[(2*grid-1)^2 + 3, heads]``."""
    old_side = 2 * grid_of_table(table.shape[0]) - 1
    new_side = 2 * grid - 1
    if old_side == new_side:
        return table
    offsets, cls_rows = table[:-CLS_ROWS], table[-CLS_ROWS:]
    heads = table.shape[1]
    image = offsets.float().T.reshape(1, heads, old_side, old_side)
    resized = F.interpolate(image, size=(new_side, new_side), mode="bicubic", align_corners=True)
    resized = resized.reshape(heads, new_side * new_side).T.to(table.dtype)
    return torch.cat([resized, cls_rows], dim=0)


def resize_patch_position_embedding(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """``[1, 1 + g*g, D]`` → ``[1, 1 + grid*grid, D]``: the patch part resampled bicubically, CLS kept."""
    old = math.isqrt(pos_embed.shape[1] - 1)
    if old * old != pos_embed.shape[1] - 1:
        raise ValueError(f"a patch position embedding of {pos_embed.shape[1]} tokens fits no square patch grid")
    if old == grid:
        return pos_embed
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    width = pos_embed.shape[2]
    image = patches.float().reshape(1, old, old, width).permute(0, 3, 1, 2)
    resized = F.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid * grid, width).to(pos_embed.dtype)
    return torch.cat([cls, resized], dim=1)
