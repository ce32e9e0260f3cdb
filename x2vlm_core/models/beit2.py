"""BEiT-2 vision encoder, in plain torch, with the official X²-VLM state-dict names.

Differences from a vanilla ViT that matter for checkpoint parity:
- no absolute position embedding; every block owns a relative position bias table
  of size (2P-1)^2 + 3 (the 3 extra rows: cls->patch, patch->cls, cls->cls);
- q and v have biases, k has none;
- layer scale (gamma_1, gamma_2) on both residual branches;
- the output drops the transformer's CLS, normalises patches with ``fc_norm`` and
  puts the mean of the patches in slot 0. For a region, the mean runs over the
  patches inside the region's mask instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from x2vlm_core.errors import ConfigError
from x2vlm_core.models.config import VisionConfig

LAYER_NORM_EPS = 1e-6


def relative_position_index(grid: int) -> torch.Tensor:
    """Index into the bias table for every (query, key) pair of ``1 + grid*grid`` tokens."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # 2, N
    delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (grid - 1)
    patch_index = delta[..., 0] * (2 * grid - 1) + delta[..., 1]
    num_distances = (2 * grid - 1) ** 2 + 3
    index = torch.empty(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    index[1:, 1:] = patch_index
    index[0, :] = num_distances - 3  # cls attends to patches
    index[:, 0] = num_distances - 2  # patches attend to cls
    index[0, 0] = num_distances - 1
    return index


def sincos_position_embedding(grid: int, width: int) -> torch.Tensor:
    """``[1, 1 + grid*grid, width]``: a quarter of the channels each sin / cos of the row, then of the
    column, at geometrically spaced frequencies; zeros for the CLS token."""
    if width % 4:
        raise ConfigError(f"vision.abs_pos_emb needs a width divisible by 4, got {width}")
    rows, cols = torch.meshgrid(
        torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij"
    )
    frequencies = 1.0 / 10000 ** (torch.arange(width // 4, dtype=torch.float32) / (width // 4))
    parts = []
    for coordinate in (rows, cols):
        angles = coordinate.flatten()[:, None] * frequencies[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat([torch.zeros(1, width), torch.cat(parts, dim=1)])[None]


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)
        return x * keep.bernoulli_(1 - self.p) / (1 - self.p)


class Attention(nn.Module):
    relative_position_index: torch.Tensor  # a buffer

    def __init__(self, dim: int, num_heads: int, grid: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * grid - 1) ** 2 + 3, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(grid))
        self.proj = nn.Linear(dim, dim)
        self._bias_cache: tuple[tuple, torch.Tensor] | None = None

    def _gather_bias(self) -> torch.Tensor:
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)  # 1, heads, N, N

    def relative_position_bias(self) -> torch.Tensor:
        """``[1, heads, N, N]``: gathered from the table at every training step (it needs a gradient);
        in inference kept until the table changes, so evaluation gathers it once, not per batch."""
        table = self.relative_position_bias_table
        if torch.compiler.is_compiling() or (torch.is_grad_enabled() and table.requires_grad):
            return self._gather_bias()
        # Optimizer steps and load_state_dict update tensors in place, which bumps their version.
        key = (table._version, self.relative_position_index._version, table.data_ptr(), table.dtype, table.device)
        if self._bias_cache is None or self._bias_cache[0] != key:
            self._bias_cache = (key, self._gather_bias())
        return self._bias_cache[1]

    def train(self, mode: bool = True) -> "Attention":
        self._bias_cache = None  # also covers weights swapped through ``.data`` by training engines
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).view(b, n, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        # An additive float bias: SDPA runs it on the memory-efficient kernel (flash takes no bias at all).
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.relative_position_bias().to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: VisionConfig, grid: int, drop_path: float) -> None:
        super().__init__()
        dim = cfg.width
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, cfg.num_heads, grid)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.gamma_1 = nn.Parameter(torch.full((dim,), cfg.layer_scale_init))
        self.gamma_2 = nn.Parameter(torch.full((dim,), cfg.layer_scale_init))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class BEiT2(nn.Module):
    """Returns ``[B, 1 + P, D]``: mean-pooled token then ``fc_norm``-ed patch tokens."""

    def __init__(self, cfg: VisionConfig, image_res: int) -> None:
        super().__init__()
        self.grid = image_res // cfg.patch_size
        self.width = cfg.width
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, cfg.width)) if cfg.abs_pos_emb else None
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(cfg, self.grid, rate) for rate in rates)
        self.fc_norm = nn.LayerNorm(cfg.width, eps=LAYER_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            # A 2-D sin-cos start (as MAE's), not BEiT's std-0.02 noise: a model trained from scratch then
            # has the patch positions from step one (a box-only probe localised single shapes twice as well
            # after 1000 steps).
            with torch.no_grad():
                self.pos_embed.copy_(sincos_position_embedding(self.grid, self.width))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Scale residual outputs down with depth, as BEiT does, to keep early training stable.
        for depth, block in enumerate(cast("Iterable[Block]", self.blocks), start=1):
            block.attn.proj.weight.data.div_((2.0 * depth) ** 0.5)
            block.mlp.fc2.weight.data.div_((2.0 * depth) ** 0.5)

    def encode_patches(self, image: torch.Tensor) -> torch.Tensor:
        """Patch tokens after the transformer and ``fc_norm``: ``[B, P, D]``."""
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.fc_norm(x[:, 1:])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        patches = self.encode_patches(image)
        return torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1)

    def forward_regions(
        self, image: torch.Tensor, idx_to_group_img: torch.Tensor, image_atts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode each image once, then one row per region text.

        ``image_atts`` is ``[R, 1 + P]`` (slot 0 is the pooled token); returns
        ``(region_embeds, full_embeds)``: the first pools only the region's patches,
        the second is the whole-image encoding of each row's own image (``[B_img, 1+P, D]``).
        """
        patches = self.encode_patches(image)
        full = torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1)
        rows = patches[idx_to_group_img]
        weights = image_atts[:, 1:].unsqueeze(-1).to(rows.dtype)
        pooled = (weights * rows).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True)
        return torch.cat([pooled, rows], dim=1), full
