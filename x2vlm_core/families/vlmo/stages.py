"""Stage-wise VLMo pre-training: which parameters train in each stage.

1. ``image``: the image-only stage. Its result is a BEiT model (``init_from_beit`` loads one
   into the V-FFN side); what trains is what the image path uses: patch embedding, CLS,
   shared self-attention, layer scale, V-FFN, final norm, and the image rows of the
   shared position table.
2. ``text``: text-only MLM with the image side frozen, as the paper has it (self-attention
   and V-FFN frozen; the released code trains everything here). What trains: the L-FFN with
   its norm, the text embeddings, the MLM head and the text rows of the position table. The
   image path's function does not change in this stage.
3. ``vl``: vision-language pre-training (and fine-tuning): everything.

The position table holds rows of every modality; a gradient hook zeroes the rows the stage
must not move. Keep it out of weight decay (``VLMo.no_weight_decay_keys``, as the official
optimizer does), or decay would still move the frozen rows. The token types stay frozen
until the ``vl`` stage for the same reason (one tensor, text and image rows, decayed).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch.utils.hooks import RemovableHandle

from x2vlm_core.errors import CheckpointError, ConfigError
from x2vlm_core.families.vlmo.checkpoint import from_beit_layout
from x2vlm_core.families.vlmo.model import VLMo
from x2vlm_core.families.vlmo.positions import image_rows
from x2vlm_core.release.model_folder import check_shapes, load_state_file

log = logging.getLogger(__name__)

STAGES = ("image", "text", "vl")
TABLE = "relative_position_bias_table"

_IMAGE_PARTS = re.compile(
    r"^transformer\.(patch_embed\.|cls_token$|pos_embed$|norm\.|"
    r"blocks\.\d+\.(norm1\.|attn\.|gamma_1$|gamma_2$|norm2_imag\.|mlp_imag\.))"
)
_TEXT_PARTS = re.compile(r"^(text_embeddings\.|mlm_score\.|transformer\.blocks\.\d+\.(norm2_text\.|mlp_text\.))")


def _partial_rows(model: VLMo, stage: str) -> dict[str, slice]:
    """Tensors shared between modalities, and the rows of them a stage trains."""
    if not model.config.relative_position:
        return {}
    first_cross = image_rows(model.config.num_patches_side)
    return {TABLE: slice(0, first_cross) if stage == "image" else slice(first_cross + 2, None)}


def stage_trainable(model: VLMo, stage: str) -> list[str]:
    """Set ``requires_grad`` for ``stage`` and return the names of the parameters that train.

    Calling it again for another stage replaces the previous stage's settings.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown VLMo pre-training stage {stage!r}; stages: {', '.join(STAGES)}")
    for handle in getattr(model, "_stage_hooks", []):
        handle.remove()
    hooks: list[RemovableHandle] = []
    setattr(model, "_stage_hooks", hooks)  # not a Tensor or Module, the only values nn.Module's __setattr__ stub takes
    partial = {} if stage == "vl" else _partial_rows(model, stage)
    parts = {"image": _IMAGE_PARTS, "text": _TEXT_PARTS}.get(stage)
    trainable = []
    for name, param in model.named_parameters():
        train = stage == "vl" or name in partial or bool(parts is not None and parts.match(name))
        param.requires_grad_(train)
        if train:
            trainable.append(name)
        if name in partial:
            hooks.append(param.register_hook(_keep_rows(param, partial[name])))
    log.info("VLMo %s stage: %d of %d parameter tensors train", stage, len(trainable), len(list(model.parameters())))
    return trainable


def _keep_rows(param: torch.Tensor, rows: slice):
    mask = torch.zeros(param.shape[0], *([1] * (param.dim() - 1)), dtype=param.dtype, device=param.device)
    mask[rows] = 1

    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad * mask.to(grad.device, grad.dtype)

    return hook


def init_from_beit(model: VLMo, path: str | Path) -> list[str]:
    """Start the stages from a BEiT checkpoint (the image-only stage's result).

    Returns the model keys left at their initialisation (the text and VL parts, the heads).
    """
    state, dropped = from_beit_layout(model, load_state_file(path))
    if dropped:
        log.info("BEiT weights with no place in VLMo, left out: %s", ", ".join(dropped[:8]))
    check_shapes(model, state, str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise CheckpointError(
            f"{path} has {len(unexpected)} weights a VLMo cannot take from BEiT, "
            f"e.g. {unexpected[:3]}; is it a BEiT checkpoint of the same width and depth?"
        )
    return list(missing)
