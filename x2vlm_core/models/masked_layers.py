"""BERT layers under a per-query attention mask: what left-to-right decoding and MLM captioning need.

``BertModel.run_layers`` masks keys only (padding). A decoder lets query ``i`` see keys ``<= i``,
and UniLM-style captioning hides its inserted [MASK] tokens from every other position, so both
pass a keep-mask ``[B, Lq, Lk]`` and, for captioning, their own position ids.
"""

from __future__ import annotations

import torch
from torch import nn

from x2vlm_core.models.bert import MASK_VALUE, BertEmbeddings, additive_mask


def causal_keep(text_atts: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` padding mask → ``[B, L, L]``: each position sees itself, what precedes it, and no padding."""
    length = text_atts.shape[1]
    lower = torch.ones(length, length, dtype=torch.bool, device=text_atts.device).tril()
    return lower[None] & text_atts[:, None, :].bool()


def embed(embeddings: BertEmbeddings, ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """BertEmbeddings' sum, with explicit position ids (several tokens may share one position)."""
    if position_ids is None:
        return embeddings(ids)
    x = (
        embeddings.word_embeddings(ids)
        + embeddings.position_embeddings(position_ids)
        + embeddings.token_type_embeddings.weight[0]
    )
    return embeddings.dropout(embeddings.LayerNorm(x))


def run_layers(
    layers: nn.ModuleList,
    x: torch.Tensor,
    keep: torch.Tensor,
    context: torch.Tensor | None = None,
    context_atts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Self-attention restricted by ``keep`` [B, Lq, Lk]; layers with cross-attention also see ``context``."""
    mask = (1.0 - keep[:, None].to(x.dtype)) * MASK_VALUE
    context_mask = additive_mask(context_atts, x.dtype) if context is not None else None
    for layer in layers:
        x = layer(x, mask, context, context_mask)
    return x
