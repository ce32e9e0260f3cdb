"""VLMo's one relative position bias table, shared by every layer and all three modes.

The table is ``[rows, heads * depth]``: layer ``l`` reads columns ``l*heads:(l+1)*heads``.
Its rows, in order:

- image: ``(2G-1)^2`` 2-D patch offsets of a ``G x G`` grid, then 3 CLS rows
  (cls→patch, patch→cls, cls→cls), exactly a BEiT table; ``n_img`` rows in all;
- cross: row ``n_img`` for text→image, row ``n_img + 1`` for image→text;
- text: ``2 * L0`` rows for 1-D offsets between text tokens (``L0`` = ``text_rel_pos_len``),
  whose last 3 are the text CLS rows.

Three index maps pick rows for each (query, key) pair: image-only, text-only, and
text-then-image for the fusion mode. Text maps are built for ``max_tokens`` and
cut to the batch's text length (an offset's row does not depend on the length).
"""

from __future__ import annotations

import torch

# The image map is BEiT's own: its rows are the table's first rows.
from x2vlm_core.models.beit2 import relative_position_index as image_position_index  # noqa: F401
from x2vlm_core.models.position_resize import CLS_ROWS, grid_of_table, resize_relative_position_bias_table


def image_rows(grid: int) -> int:
    return (2 * grid - 1) ** 2 + CLS_ROWS


def table_rows(grid: int, text_rel_pos_len: int) -> int:
    return image_rows(grid) + 2 + 2 * text_rel_pos_len


def text_position_index(max_tokens: int, grid: int, text_rel_pos_len: int) -> torch.Tensor:
    """``[T, T]`` rows for text: offsets ``j - i`` between tokens 1.., then the CLS rows."""
    total = table_rows(grid, text_rel_pos_len)
    first_text_row = image_rows(grid) + 2
    positions = torch.arange(max_tokens - 1)
    offsets = positions[None, :] - positions[:, None]  # key minus query
    index = torch.empty(max_tokens, max_tokens, dtype=torch.long)
    index[1:, 1:] = offsets + (text_rel_pos_len - 2) + first_text_row
    index[0, :] = total - 3  # cls attends to tokens
    index[:, 0] = total - 2  # tokens attend to cls
    index[0, 0] = total - 1
    return index


def text_image_index(text_index: torch.Tensor, image_index: torch.Tensor, grid: int) -> torch.Tensor:
    """``[T + I, T + I]`` for the fusion mode, text tokens first as the official model orders them."""
    t, i = text_index.shape[0], image_index.shape[0]
    cross = image_rows(grid)
    text_to_image = torch.full((t, i), cross, dtype=torch.long, device=text_index.device)
    image_to_text = torch.full((i, t), cross + 1, dtype=torch.long, device=text_index.device)
    return torch.cat([torch.cat([text_index, text_to_image], 1), torch.cat([image_to_text, image_index], 1)], 0)


def position_bias(table: torch.Tensor, index: torch.Tensor, depth: int) -> tuple[torch.Tensor, ...]:
    """One gather for all layers, then per layer a ``[heads, N, N]`` bias."""
    n = index.shape[0]
    bias = table[index.reshape(-1)].view(n, n, -1).permute(2, 0, 1)
    return bias.chunk(depth, dim=0)


def resize_shared_table(table: torch.Tensor, grid: int, text_rel_pos_len: int) -> torch.Tensor:
    """Fit the image rows to another patch grid; the cross and text rows do not depend on it.

    The text part must have the model's size (``2 * text_rel_pos_len`` rows); what is left
    before it are the checkpoint's image rows.
    """
    old_image = table.shape[0] - 2 - 2 * text_rel_pos_len
    if old_image <= CLS_ROWS:
        raise ValueError(
            f"a shared position table with {table.shape[0]} rows has no room for "
            f"2 cross and {2 * text_rel_pos_len} text rows"
        )
    if grid_of_table(old_image) == grid:
        return table
    resized = resize_relative_position_bias_table(table[:old_image], grid)
    return torch.cat([resized, table[old_image:]], dim=0)
