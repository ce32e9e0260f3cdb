"""X-VLM's Swin image encoder: timm's ``SwinTransformer`` with X-VLM's output.

timm's Swin computes the official X-VLM Swin function (checked on the official parity fixture):
same window partition, cyclic shift, shift mask value (-100), relative position tables, patch
merging order (rows then columns of each 2x2 block) and the rule that a stage whose grid fits
in one window neither shifts nor splits. Its state dict differs in two ways that
``checkpoint.py`` bridges: timm merges patches at the start of a stage where the official code
does at the end of the previous one (``layers.{i}.downsample`` is official ``layers.{i-1}``),
and it does not save the ``relative_position_index`` / ``attn_mask`` buffers, which it derives
from the window geometry (the official loader deletes them too).

The output is X-VLM's: the final stage's tokens after the last LayerNorm, row-major, preceded
by their mean (there is no CLS token); for a region, the mean over the tokens inside its mask.
"""

from __future__ import annotations

from typing import cast

import torch
from timm.models.swin_transformer import SwinTransformer
from torch import nn

from x2vlm_core.families.xvlm.config import SWIN_PATCH, XVLMVisionConfig
from x2vlm_core.models.beit2 import sincos_position_embedding


class SwinEncoder(SwinTransformer):
    def __init__(self, cfg: XVLMVisionConfig, image_res: int) -> None:
        super().__init__(
            img_size=image_res,
            patch_size=SWIN_PATCH,
            embed_dim=cfg.embed_dim,
            depths=tuple(cfg.depths),
            num_heads=tuple(cfg.stage_heads),
            window_size=cfg.window_size,
            mlp_ratio=4.0,
            qkv_bias=True,
            drop_path_rate=cfg.drop_path_rate,
            num_classes=0,
        )
        self.width = cfg.out_width
        grid = image_res // SWIN_PATCH
        self.absolute_pos_embed = None
        if cfg.abs_pos_emb:  # timm's Swin has no ``ape``; the official name and shape [1, grid*grid, C]
            # A 2-D sin-cos start, as x2vlm_tiny's, so that positions are there from step one.
            start = sincos_position_embedding(grid, cfg.embed_dim)[:, 1:]
            self.absolute_pos_embed = nn.Parameter(start)

    @property
    def blocks(self) -> list[nn.Module]:
        """Every Swin block in order: what activation checkpointing and compilation work on."""
        # timm builds both as nn.Sequential; torch types the attributes as Tensor | Module.
        stages = cast(nn.Sequential, self.layers)
        return [block for stage in stages for block in cast(nn.Sequential, stage.blocks)]

    def encode_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """The final grid's tokens after the last LayerNorm: ``[B, G*G, D]``."""
        x = self.patch_embed(image)  # timm keeps NHWC
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed.view(1, *x.shape[1:])
        return self.norm(self.layers(x)).flatten(1, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        tokens = self.encode_tokens(image)
        return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)

    def forward_regions(
        self, image: torch.Tensor, idx_to_group_img: torch.Tensor, image_atts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(region_embeds, full_embeds)``: one row per region text, token 0 the mean inside its
        mask (``image_atts[:, 1:]``, on the final grid), and each image's whole-image encoding."""
        tokens = self.encode_tokens(image)
        full = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        rows = tokens[idx_to_group_img]
        weights = image_atts[:, 1:].unsqueeze(-1).to(rows.dtype)
        pooled = (weights * rows).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True)
        return torch.cat([pooled, rows], dim=1), full
