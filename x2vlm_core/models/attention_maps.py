"""Grad-CAM over a fusion layer's cross-attention: where in the image the ITM head looked for a text.

X-VLM's weakly supervised grounding locates a referring expression without any box training: the
gradient of the ITM "match" logit with respect to one fusion layer's cross-attention probabilities,
clamped at zero, weights those probabilities; averaged over heads and text tokens, that is a heat
value per image patch.

``keep_attention_probs`` is the one hook this needs in the BERT stack: inside it, one attention
module computes its attention explicitly (the same values SDPA returns) and keeps the probabilities,
which stay in the autograd graph.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from x2vlm_core.errors import ConfigError
from x2vlm_core.models.bert import BertLayer, BertSelfAttention


@contextmanager
def keep_attention_probs(attention: BertSelfAttention) -> Iterator[list[torch.Tensor]]:
    """A list that each forward of ``attention`` appends its probabilities ``[B, heads, Lq, Lk]`` to."""
    if attention.kept_probs is not None:
        raise RuntimeError("this attention module already keeps its probabilities; leave the outer block first")
    kept: list[torch.Tensor] = []
    attention.kept_probs = kept
    try:
        yield kept
    finally:
        attention.kept_probs = None


def fusion_layers(model: Any) -> dict[int, BertLayer]:
    """The layers of a model's BERT stack that cross-attend to the image, by their index in the stack."""
    layers = model.text_encoder.bert.encoder.layer
    return {i: layer for i, layer in enumerate(layers) if hasattr(layer, "crossattention")}


def middle_fusion_layer(model: Any) -> int:
    """The default layer: the middle one of the fusion layers (layer 9 of X-VLM base's 12, its official ``block_num``)."""
    indices = sorted(fusion_layers(model))
    return indices[len(indices) // 2]


def cross_attention_of(model: Any, layer: int) -> BertSelfAttention:
    layers = fusion_layers(model)
    if layer not in layers:
        raise ConfigError(
            f"layer {layer} of the BERT stack has no cross-attention; pick a fusion layer among {sorted(layers)}"
        )
    attention: BertSelfAttention = layers[layer].crossattention.self
    return attention


def itm_gradcam(
    model: Any,
    layer: int,
    image_embeds: torch.Tensor,
    image_atts: torch.Tensor | None,
    text_embeds: torch.Tensor,
    text_atts: torch.Tensor,
) -> torch.Tensor:
    """Heat maps ``[B, grid, grid]`` (>= 0) of each (image, text) row's ITM match logit at ``layer``.

    ``image_embeds`` ``[B, 1 + grid*grid, D]``: a pooled token, then the patch grid in row-major
    order. Only the fusion layers run with gradients, and no parameter's ``.grad`` is touched.
    """
    patches = image_embeds.shape[1] - 1
    grid = math.isqrt(patches)
    if grid * grid != patches:
        raise ConfigError(
            f"the image encoder gives {patches} patch tokens, not a square grid; Grad-CAM needs a square patch grid"
        )
    # Fresh leaves: the graph starts at the fusion layers whether or not the weights require grad.
    image_embeds = image_embeds.detach().requires_grad_(True)
    with torch.enable_grad(), keep_attention_probs(cross_attention_of(model, layer)) as kept:
        match = model.itm_logits(image_embeds, image_atts, text_embeds.detach(), text_atts)[:, 1]
        (probs,) = kept
        # Rows are independent, so the gradient of the sum is each row's own gradient.
        (grads,) = torch.autograd.grad(match.sum(), probs)
    with torch.no_grad():
        cam = probs[..., 1:] * grads[..., 1:].clamp(min=0)  # [B, heads, text tokens, patches]; pooled token left out
        tokens = text_atts[:, None, :, None].to(cam.dtype)  # padding tokens do not count
        heat = (cam * tokens).mean(dim=1).sum(dim=1) / tokens.sum(dim=2)[:, 0]
    return heat.view(-1, grid, grid)
