"""Captioning with the pre-trained MLM head (UniLM-style, official ``XVLMForMLMCaptioning``): no new weights.

The caption is read left to right: each token attends to itself and the tokens before it (and to
the image in the fusion layers). Training uses the "FG-free" layout: a [MASK] is inserted before each
token to predict, at that token's position, and no other token attends to it, so every context is
made of real tokens, exactly as at generation time, when one [MASK] is appended after the tokens so
far and its prediction is the next token.
"""

from __future__ import annotations

import torch

from x2vlm_core.families.x2vlm.model import XVLM
from x2vlm_core.models.masked_layers import embed, run_layers


def masked_token_logits(
    model: XVLM,
    ids: torch.Tensor,
    position_ids: torch.Tensor,
    keep: torch.Tensor,
    masked_pos: torch.Tensor,
    image_embeds: torch.Tensor,
    image_atts: torch.Tensor,
) -> torch.Tensor:
    """MLM logits ``[B, M, V]`` at ``masked_pos`` of sequences laid out with their own positions and keep-mask."""
    bert = model.text_encoder.bert
    hidden = run_layers(bert.encoder.layer, embed(bert.embeddings, ids, position_ids), keep, image_embeds, image_atts)
    picked = torch.gather(hidden, 1, masked_pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return model.text_encoder.cls.predictions(picked)


def next_token_log_probs(
    model: XVLM, tokens: torch.Tensor, image_embeds: torch.Tensor, image_atts: torch.Tensor, mask_id: int
) -> torch.Tensor:
    """Log-probabilities ``[N, V]`` of the token after ``tokens`` [N, L], read off an appended [MASK]."""
    ids = torch.cat([tokens, tokens.new_full((tokens.shape[0], 1), mask_id)], dim=1)
    length = ids.shape[1]
    positions = torch.arange(length, device=ids.device).expand_as(ids)
    keep = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril().expand(len(ids), -1, -1)
    last = torch.full((len(ids), 1), length - 1, dtype=torch.long, device=ids.device)
    return masked_token_logits(model, ids, positions, keep, last, image_embeds, image_atts)[:, 0].log_softmax(dim=-1)
