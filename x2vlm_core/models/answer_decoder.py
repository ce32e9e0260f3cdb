"""The VQA answer decoder (official ``text_decoder``): a left-to-right BERT over the fused question.

Its layers have causal self-attention and cross-attention to the question states that the
fusion layers produced (so its keys have the text width). It is initialised from the pre-trained
model: embeddings and MLM head as they are, decoder layer ``j`` from fusion layer ``j`` (or, with
half as many decoder layers, from every second fusion layer, the odd ones, as the official loader does).
At test time it ranks a fixed answer list instead of generating freely.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from x2vlm_core.errors import ConfigError
from x2vlm_core.models.bert import BertForMaskedLM
from x2vlm_core.models.config import TextConfig
from x2vlm_core.models.masked_layers import causal_keep, run_layers


class AnswerDecoder(BertForMaskedLM):
    """``bert`` (embeddings + layers) and ``cls`` (MLM head tied to its own word embeddings)."""

    def __init__(self, text: TextConfig, num_layers: int) -> None:
        cfg = dataclasses.replace(text, num_layers=num_layers, fusion_start_at=0)
        super().__init__(cfg, encoder_width=text.hidden_size)

    def logits(
        self,
        answer_ids: torch.Tensor,
        answer_atts: torch.Tensor,
        question_states: torch.Tensor,
        question_atts: torch.Tensor,
    ) -> torch.Tensor:
        """Next-token logits ``[B, L, V]``: position ``i`` predicts token ``i + 1``."""
        hidden = run_layers(
            self.bert.encoder.layer,
            self.bert.embeddings(answer_ids),
            causal_keep(answer_atts),
            question_states,
            question_atts,
        )
        return self.cls.predictions(hidden)

    def answer_nll(
        self,
        answer_ids: torch.Tensor,
        answer_atts: torch.Tensor,
        question_states: torch.Tensor,
        question_atts: torch.Tensor,
    ) -> torch.Tensor:
        """Per answer, the summed negative log-likelihood of its tokens after the first ([CLS]), padding excluded."""
        logits = self.logits(answer_ids, answer_atts, question_states, question_atts)[:, :-1]
        targets = answer_ids[:, 1:].masked_fill(answer_atts[:, 1:] == 0, -100)
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="none")
        return nll.view(targets.shape).sum(dim=1)

    @torch.no_grad()
    def init_from_fusion_layers(self, text_encoder: BertForMaskedLM) -> None:
        """Copy the pre-trained embeddings, fusion layers and MLM head into this decoder."""
        encoder = text_encoder.bert
        fusion = encoder.encoder.layer[encoder.fusion_start_at :]
        layers = self.bert.encoder.layer
        if len(fusion) not in (len(layers), 2 * len(layers)):
            raise ConfigError(
                f"an answer decoder of {len(layers)} layers cannot be initialised from "
                f"{len(fusion)} fusion layers; use {len(fusion)} or {len(fusion) // 2} decoder layers"
            )
        stride = len(fusion) // len(layers)
        self.bert.embeddings.load_state_dict(encoder.embeddings.state_dict())
        for j, layer in enumerate(layers):
            source = fusion[j * stride + stride - 1].state_dict()
            own = layer.state_dict()
            # Cross-attention keys/values read the vision width in the encoder and the text width here.
            layer.load_state_dict({k: v for k, v in source.items() if own[k].shape == v.shape}, strict=False)
        self.cls.load_state_dict(text_encoder.cls.state_dict())
