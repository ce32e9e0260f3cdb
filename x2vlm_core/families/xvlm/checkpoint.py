"""The official X-VLM checkpoint layout ⇄ this model's state dict (as timm's ``checkpoint_filter_fn``).

Official files (``{'model': state_dict, 'config': ...}``) name the Swin parts as Microsoft's Swin
does; timm's differ (see ``swin.py``):

- ``vision_encoder.layers.{i}.downsample.*`` is ours ``layers.{i+1}.downsample.*``;
- the ``relative_position_index`` and ``attn_mask`` buffers are left out: the model derives them
  from its window geometry (the official loader deletes them as well), which also lets a
  checkpoint meet another window;
- a ``relative_position_bias_table`` for another window (official file or our own) is resized as
  the official loader resizes it (``window_resize``);
- fine-tuned task models (``models/model_retrieval.py``, ``model_bbox.py``) save their BERT without
  the MLM head's wrapper: ``text_encoder.embeddings.*`` is ours ``text_encoder.bert.embeddings.*``.

The official CLIP-ViT encoder's names are Hugging Face's CLIP ones (``clip_layout``); the DeiT's are
timm's. Everything else (BERT stack, heads) is the model's as it is. Our own model folders are
already in the model's layout and pass through unchanged.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import torch
from torch import nn

from x2vlm_core.families.xvlm.clip_layout import (
    clip_from_official,
    clip_to_official,
    is_clip_model,
    is_official_clip_layout,
)
from x2vlm_core.families.xvlm.window_resize import resize_window_bias_table, window_of_table
from x2vlm_core.release.model_folder import fit_image_resolution

if TYPE_CHECKING:
    from x2vlm_core.families.xvlm.model import XVLMModel

log = logging.getLogger(__name__)

_DOWNSAMPLE = re.compile(r"^vision_encoder\.layers\.(\d+)\.downsample\.(.*)$")
_TEXT_MODEL = re.compile(r"^text_encoder\.(?=embeddings\.|encoder\.)")
_DERIVED = ("relative_position_index", "attn_mask")  # Swin buffers computed from the window


def is_task_layout(state: dict[str, torch.Tensor]) -> bool:
    """An official fine-tuned model's BERT (``BertModel``, no ``bert.`` level, no MLM head)."""
    return "text_encoder.embeddings.word_embeddings.weight" in state


def is_official_swin_layout(state: dict[str, torch.Tensor]) -> bool:
    """Microsoft's Swin names: stage 0 merges patches (in timm's, stage 0 never does)."""
    return "vision_encoder.layers.0.downsample.reduction.weight" in state


def adapt_checkpoint(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official X-VLM or our own state dict → this model's names and window (shapes are checked by the caller)."""
    if is_official_clip_layout(state):
        state = clip_from_official(state)
    if is_task_layout(state):
        state = {_TEXT_MODEL.sub("text_encoder.bert.", key): value for key, value in state.items()}
    official = is_official_swin_layout(state)
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("vision_encoder.layers.") and key.endswith(_DERIVED):
            continue
        merge = _DOWNSAMPLE.match(key) if official else None
        if merge:
            key = f"vision_encoder.layers.{int(merge[1]) + 1}.downsample.{merge[2]}"
        if (
            key.startswith("vision_encoder.layers.")
            and key.endswith("relative_position_bias_table")
            and key in expected
            and expected[key].shape != value.shape
        ):
            window = window_of_table(expected[key].shape[0])
            log.info("resizing %s from window %d to %d", key, window_of_table(value.shape[0]), window)
            value = resize_window_bias_table(value, window)
        out[key] = value
    return fit_image_resolution(model, out)  # a ViT encoder's position embedding at another image size


def to_official(model: XVLMModel) -> dict[str, torch.Tensor]:
    """This model's weights in the official layout, buffers included (what official code loads strictly)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        merge = _DOWNSAMPLE.match(key)
        out[f"vision_encoder.layers.{int(merge[1]) - 1}.downsample.{merge[2]}" if merge else key] = value
    for name, buffer in model.vision_encoder.named_buffers():
        if name.endswith(_DERIVED) and buffer is not None:
            out[f"vision_encoder.{name}"] = buffer
    out["temp"] = out["temp"].reshape(())
    return clip_to_official(out) if is_clip_model(out) else out
