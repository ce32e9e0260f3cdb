"""The repeated transformer blocks of a model of any family: what activation checkpointing and
``torch.compile`` work on, one block at a time."""

from __future__ import annotations

from torch import nn


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of an X²-VLM, VLMo or CCLM model, in order."""
    if hasattr(model, "transformer"):  # VLMo: one multiway stack
        return list(model.transformer.blocks)
    if hasattr(model, "cross_encoder"):  # CCLM: vision, transformers text encoder, cross encoder
        return [*model.vision_encoder.blocks, *model.text_encoder.encoder.layer, *model.cross_encoder.encoder.layer]
    return [*model.vision_encoder.blocks, *model.text_encoder.bert.encoder.layer]
