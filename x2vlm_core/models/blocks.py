"""The repeated transformer blocks of a model of any family: what activation checkpointing and
``torch.compile`` work on, one block at a time."""

from __future__ import annotations

from typing import cast

from torch import nn


def _blocks(model: nn.Module, path: str) -> list[nn.Module]:
    return list(cast(nn.ModuleList, model.get_submodule(path)))


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of an X²-VLM, VLMo or CCLM model, in order."""
    if hasattr(model, "transformer"):  # VLMo: one multiway stack
        return _blocks(model, "transformer.blocks")
    if hasattr(model, "cross_encoder"):  # CCLM: vision, transformers text encoder, cross encoder
        return [
            *_blocks(model, "vision_encoder.blocks"),
            *_blocks(model, "text_encoder.encoder.layer"),
            *_blocks(model, "cross_encoder.encoder.layer"),
        ]
    return [*_blocks(model, "vision_encoder.blocks"), *_blocks(model, "text_encoder.bert.encoder.layer")]
