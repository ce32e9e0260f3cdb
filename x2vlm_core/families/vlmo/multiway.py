"""VLMo's multiway transformer: shared self-attention, one feed-forward expert per modality.

Each block has one self-attention for every input and, after it, a modality expert:
V-FFN (``mlp_imag``) for image tokens, L-FFN (``mlp_text``) for text tokens, and in the
blocks from ``vlffn_start`` on a VL-FFN (``mlp_vl``) for fused image-text input. Below
``vlffn_start`` a fused sequence (text first, then image) is split and each part goes
through its own expert. Module names follow the official ``MultiWayTransformer``, so the
``transformer.*`` keys of official checkpoints load as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from x2vlm_core.families.vlmo.config import VLMoConfig
from x2vlm_core.models.beit2 import DropPath, Mlp, PatchEmbed

LAYER_NORM_EPS = 1e-6
MODES = ("image", "text", "vl")


class Attention(nn.Module):
    """Self-attention with q/v biases (k has none); the position bias comes from outside."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MultiwayBlock(nn.Module):
    def __init__(self, cfg: VLMoConfig, drop_path: float, with_vlffn: bool) -> None:
        super().__init__()
        dim, hidden = cfg.width, int(cfg.width * cfg.mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, cfg.num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2_text = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2_imag = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp_text = Mlp(dim, hidden)
        self.mlp_imag = Mlp(dim, hidden)
        if with_vlffn:
            self.mlp_vl = Mlp(dim, hidden)
            self.norm2_vl = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        if cfg.layer_scale_init is not None:
            self.gamma_1: nn.Parameter | None = nn.Parameter(torch.full((dim,), cfg.layer_scale_init))
            self.gamma_2: nn.Parameter | None = nn.Parameter(torch.full((dim,), cfg.layer_scale_init))
        else:
            self.gamma_1 = self.gamma_2 = None

    @property
    def has_vlffn(self) -> bool:
        return hasattr(self, "mlp_vl")

    def _scaled(self, gamma: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(x if gamma is None else gamma * x)

    def _expert(self, x: torch.Tensor, norm: nn.LayerNorm, mlp: Mlp) -> torch.Tensor:
        return x + self._scaled(self.gamma_2, mlp(norm(x)))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, mode: str, text_len: int = 0) -> torch.Tensor:
        x = x + self._scaled(self.gamma_1, self.attn(self.norm1(x), attn_mask))
        if mode == "image":
            return self._expert(x, self.norm2_imag, self.mlp_imag)
        if mode == "text":
            return self._expert(x, self.norm2_text, self.mlp_text)
        if self.has_vlffn:
            return self._expert(x, self.norm2_vl, self.mlp_vl)
        text, image = x[:, :text_len], x[:, text_len:]
        return torch.cat(
            [self._expert(text, self.norm2_text, self.mlp_text), self._expert(image, self.norm2_imag, self.mlp_imag)],
            dim=1,
        )


class MultiwayTransformer(nn.Module):
    """Patch embedding, the blocks and the final norm (the official ``transformer.*``)."""

    def __init__(self, cfg: VLMoConfig) -> None:
        super().__init__()
        self.vlffn_start = cfg.vlffn_start
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        if not cfg.relative_position:
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches_side**2 + 1, cfg.width))
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            MultiwayBlock(cfg, rate, with_vlffn=i >= cfg.vlffn_start) for i, rate in enumerate(rates)
        )
        self.norm = nn.LayerNorm(cfg.width, eps=LAYER_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if hasattr(self, "pos_embed"):
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def visual_embed(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` → CLS + patch tokens ``[B, 1 + P, D]``."""
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed if hasattr(self, "pos_embed") else x

    def run(
        self,
        x: torch.Tensor,
        keep: torch.Tensor,
        mode: str,
        position_bias: Sequence[torch.Tensor] | None,
        start: int = 0,
        stop: int | None = None,
        text_len: int = 0,
    ) -> torch.Tensor:
        """Blocks ``start:stop`` in ``mode``; ``keep`` is the ``[B, N]`` 1/0 key mask.

        ``position_bias`` holds one ``[heads, N, N]`` bias per block (``None`` with absolute
        positions). The final norm is not applied here.
        """
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        pad = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(keep == 0, float("-inf"))
        pad = pad[:, None, None, :]
        stop = len(self.blocks) if stop is None else stop
        for index in range(start, stop):
            mask = pad if position_bias is None else pad + position_bias[index].unsqueeze(0).to(x.dtype)
            x = self.blocks[index](x, mask, mode, text_len)
        return x
