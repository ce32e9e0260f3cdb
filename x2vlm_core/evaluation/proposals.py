"""Choosing a detection proposal by a heat map: weakly supervised grounding's prediction.

The heat map of the patch grid is upsampled (bicubic) to the image's pixels; a proposal scores the
heat it covers divided by its area to the power ``alpha``. The official evaluation uses
``alpha = 0.5``, between the total heat (0, which favours large boxes) and the mean heat (1, which
favours small ones).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def proposal_scores(heat: torch.Tensor, proposals: torch.Tensor, width: int, height: int, alpha: float) -> torch.Tensor:
    """Scores ``[N]`` of ``proposals`` ``[N, 4]`` (x, y, w, h in pixels of a ``width`` x ``height`` image).

    ``heat`` ``[grid, grid]`` covers the whole image (the model sees it resized to a square). A box
    covers the pixel rows and columns from its corner's integer part to its far edge's.
    """
    pixels = F.interpolate(heat[None, None].float(), size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    # A summed-area table: each box's total in four lookups, however many proposals an image has
    # (in float64, so a small box's difference of two large sums keeps its digits).
    table = F.pad(pixels.double().cumsum(0).cumsum(1), (1, 0, 1, 0))
    x, y, w, h = proposals.to(pixels.device, torch.float64).unbind(-1)
    left = x.long().clamp(0, width)
    top = y.long().clamp(0, height)
    right = (x + w).long().clamp(0, width)
    bottom = (y + h).long().clamp(0, height)
    inside = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
    return inside / (w * h).clamp(min=1e-6) ** alpha


def best_proposal(heat: torch.Tensor, proposals: torch.Tensor, width: int, height: int, alpha: float) -> int:
    """The index of the highest-scoring proposal (the first one on ties)."""
    return int(proposal_scores(heat, proposals, width, height, alpha).argmax())
