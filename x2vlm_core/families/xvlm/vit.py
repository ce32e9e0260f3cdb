"""X-VLM's DeiT and CLIP-ViT image encoders: timm's ``VisionTransformer`` with X-VLM's output.

As in the official ``models/vit.py`` and ``models/clip_vit.py``, the output is every token after
the final LayerNorm, the transformer's own CLS token first (no mean pooling), and a region is
encoded by "local attention": the top ``local_attn_depth`` blocks run once more per region text,
attending only to the CLS token and the patches inside its mask (additive -10000, the official
value). DeiT: LayerNorm eps 1e-6, GELU (the official DeiT keys are timm's). CLIP-ViT: a LayerNorm
before the blocks, eps 1e-5, quick-GELU, a patch embedding without bias (timm's CLIP layout).
"""

from __future__ import annotations

import functools
from typing import cast

import torch
from timm.layers import get_act_layer
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from x2vlm_core.families.xvlm.config import XVLMVisionConfig

MASK_VALUE = -10000.0


class ViTEncoder(VisionTransformer):
    def __init__(self, cfg: XVLMVisionConfig, image_res: int) -> None:
        clip = cfg.encoder == "clip_vit"
        super().__init__(
            img_size=image_res,
            patch_size=cfg.patch_size,
            embed_dim=cfg.width,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            mlp_ratio=4.0,
            qkv_bias=True,
            class_token=True,
            global_pool="",
            num_classes=0,
            pre_norm=clip,
            drop_path_rate=cfg.drop_path_rate,
            norm_layer=functools.partial(nn.LayerNorm, eps=1e-5 if clip else 1e-6),
            act_layer=get_act_layer("quick_gelu") if clip else nn.GELU,
        )
        self.width = cfg.width
        self.local_attn_depth = cfg.local_attn_depth

    def _embed(self, image: torch.Tensor) -> torch.Tensor:
        return self.norm_pre(self._pos_embed(self.patch_embed(image)))

    # X-VLM's encoding takes no attention mask (a region's mask goes through forward_regions), unlike
    # timm's forward(x, attn_mask, is_causal).
    def forward(self, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``[B, 1 + P, D]``: the CLS token, then the patches, after the final LayerNorm."""
        return self.norm(self.blocks(self._embed(image)))

    def forward_regions(
        self, image: torch.Tensor, idx_to_group_img: torch.Tensor, image_atts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(region_embeds, full_embeds)``: the top blocks once more per region text, restricted to
        ``image_atts`` (``[R, 1 + P]``, slot 0 the CLS token), and each image's whole encoding."""
        x = self._embed(image)
        blocks = list(cast(nn.Sequential, self.blocks))  # timm builds an nn.Sequential; typed as nn.Module
        split = len(blocks) - self.local_attn_depth
        for block in blocks[:split]:
            x = block(x)
        rows = x[idx_to_group_img]
        mask = (1.0 - image_atts[:, None, None, :].to(rows.dtype)) * MASK_VALUE
        for block in blocks[split:]:
            x, rows = block(x), block(rows, attn_mask=mask)
        return self.norm(rows), self.norm(x)
