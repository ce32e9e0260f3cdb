"""Resizing BEiT-2 position tables when a checkpoint meets another image size.

A relative position bias table holds one row per 2-D patch offset, ``(2G-1)^2`` of them for a
``G x G`` patch grid (row-major, the first offset coordinate major), then 3 rows for the CLS
token. The official loader (X²-VLM's ``interpolate_pos_embed``, taken from BEiT) resizes it
like this, and so do we, so that a released checkpoint fine-tuned at another size starts from
the same weights as it would in the official code:

- the source offsets ``-(g-1) .. g-1`` are *not* spread evenly: offset ``k`` is placed at
  ``1 + q + ... + q^(|k|-1)`` (with its sign), a geometric series whose ratio ``q`` is found
  by bisection in [1.01, 1.5] so that the last one lands near the target's ``G-1``. Offsets 0
  and ±1 stay where they are, so the near-diagonal biases carry over unchanged; far offsets are
  stretched (or, when shrinking, squeezed only down to ``q = 1.01``);
- through those positions goes the 2-D cubic interpolating spline (tensor product, not-a-knot
  ends: what FITPACK's ``regrid`` fits with ``s=0`` and what ``scipy.interpolate.interp2d``
  with ``kind='cubic'`` used);
- it is read at the integer offsets ``-(G-1) .. G-1``; a target beyond the outermost source
  position takes the spline's value at that edge (FITPACK clamps its argument);
- the 3 CLS rows are kept as they are.

``interp2d`` is gone from SciPy, so the spline is written here in torch: it is linear in the
table, so one ``[targets, sources]`` weight matrix per axis does every head at once. It is
computed in float64 as FITPACK does. ``tests/fixtures/official_rel_pos_resize.pt`` holds
outputs of the official function to check it against.

An absolute position embedding (``pos_embed``) is resampled with plain bicubic interpolation
(``align_corners=False``), which is also what the official loader does for it.
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


def geometric_ratio(source_reach: int, target_reach: int) -> float:
    """The ratio ``q`` that stretches ``source_reach`` offsets to about ``target_reach``.

    The same bisection as the official loader, step for step, so that ``q`` is the same float
    (the last midpoint tried, not the interval's final middle).
    """
    low, high = 1.01, 1.5
    ratio = low
    while high - low > 1e-6:
        ratio = (low + high) / 2.0
        reach = (1.0 - ratio**source_reach) / (1.0 - ratio)  # 1 + q + ... + q^(n-1)
        if reach > target_reach:
            high = ratio
        else:
            low = ratio
    return ratio


def source_positions(source_reach: int, target_reach: int) -> list[float]:
    """Where the offsets ``-n .. n`` of the source table sit on the target's integer axis."""
    ratio = geometric_ratio(source_reach, target_reach)
    positive, position = [], 1.0
    for i in range(source_reach):  # summed term by term, as the official loop does
        positive.append(position)
        position += ratio ** (i + 1)
    return [-p for p in reversed(positive)] + [0.0] + positive


def cubic_spline_weights(nodes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``W`` ``[len(targets), len(nodes)]``: ``W @ y`` is the not-a-knot cubic spline through
    ``(nodes, y)`` read at ``targets``, which are first clamped to the nodes' range.

    Built on the spline's second derivatives ``M`` at the nodes: continuity of the first
    derivative at interior nodes, and of the third at the second and second-to-last node
    (not-a-knot, i.e. FITPACK's knots for ``s=0``), fix ``M`` linearly in ``y``.
    """
    m = nodes.shape[0]
    if m < 4:
        raise ValueError(f"a cubic spline needs at least 4 nodes, got {m}")
    dtype = nodes.dtype
    h = nodes[1:] - nodes[:-1]
    system = torch.zeros(m, m, dtype=dtype)
    rhs = torch.zeros(m, m, dtype=dtype)  # rhs @ y: the right-hand side for values y
    eye = torch.eye(m, dtype=dtype)
    system[0, :3] = torch.stack([h[1], -(h[0] + h[1]), h[0]])
    system[-1, -3:] = torch.stack([h[-1], -(h[-2] + h[-1]), h[-2]])
    for i in range(1, m - 1):
        system[i, i - 1 : i + 2] = torch.stack([h[i - 1], 2 * (h[i - 1] + h[i]), h[i]])
        rhs[i] = 6 * ((eye[i + 1] - eye[i]) / h[i] - (eye[i] - eye[i - 1]) / h[i - 1])
    moments = torch.linalg.solve(system, rhs)  # [m, m]: M = moments @ y

    t = targets.to(dtype).clamp(nodes[0], nodes[-1])
    interval = (torch.searchsorted(nodes, t, right=True) - 1).clamp(0, m - 2)
    left, right, width = nodes[interval], nodes[interval + 1], h[interval]
    a, b = (right - t)[:, None], (t - left)[:, None]
    w = width[:, None]
    return (
        moments[interval] * (a**3 / (6 * w) - a * w / 6)
        + moments[interval + 1] * (b**3 / (6 * w) - b * w / 6)
        + eye[interval] * a / w
        + eye[interval + 1] * b / w
    )


def resize_relative_position_bias_table(table: torch.Tensor, grid: int) -> torch.Tensor:
    """``table`` ``[(2g-1)^2 + 3, heads]`` → ``[(2*grid-1)^2 + 3, heads]``, as the official loader does."""
    old_grid = grid_of_table(table.shape[0])
    old_side, new_side = 2 * old_grid - 1, 2 * grid - 1
    if old_side == new_side:
        return table
    if old_grid < 3:
        # The official spline needs 4 offsets per axis; it fails on a 2x2 grid's 3 as well.
        raise ValueError(
            f"cannot resize a relative position bias table from a {old_grid}x{old_grid} "
            "patch grid: the cubic spline needs a grid of at least 3x3"
        )
    offsets, cls_rows = table[:-CLS_ROWS], table[-CLS_ROWS:]
    heads = table.shape[1]
    nodes = torch.tensor(source_positions(old_grid - 1, grid - 1), dtype=torch.float64)
    targets = torch.arange(-(grid - 1), grid, dtype=torch.float64)
    weights = cubic_spline_weights(nodes, targets).to(table.device)
    # The official code fits float32 values in float64; one matrix per axis, every head at once.
    values = offsets.float().double().T.reshape(heads, old_side, old_side)
    resized = weights @ values @ weights.T
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
