"""Fitting checkpoints to a VLMo model: official VLMo files, and BEiT files for the image-only stage.

Files are read by ``checkpoint.load_state_file`` (``weights_only=True``); this module only
adapts the tensors, as timm's ``checkpoint_filter_fn`` does:

- official VLMo: drops the ``module.`` prefix of DeepSpeed files and any saved index maps,
  makes the 0-dim logit scales ``[1]``, cuts the text position rows of a text-only-stage file
  (196) to ``max_tokens``, fits the image rows of the shared position table (or the absolute
  position embedding) to the model's patch grid, and gives NLVR2 its third token type;
- BEiT: ``blocks.i.mlp``/``norm2`` become the V-FFN (``mlp_imag``/``norm2_imag``), everything
  goes under ``transformer.``, and the per-layer position tables are laid side by side into
  the image rows of the shared table (the official text-stage conversion).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from x2vlm_core.errors import CheckpointError
from x2vlm_core.families.vlmo.model import IMAGE_TOKEN_TYPE, VLMo
from x2vlm_core.families.vlmo.positions import image_rows, resize_shared_table
from x2vlm_core.models.position_resize import resize_relative_position_bias_table

SCALAR_KEYS = ("logit_scale", "logit_vl_scale")
# The official model keeps these as plain attributes; a few of its files still carry them.
INDEX_KEYS = ("relative_position_index", "text_relative_position_index", "text_imag_relative_position_index")
TEXT_POSITION_KEYS = ("text_embeddings.position_embeddings.weight", "text_embeddings.position_ids")
DEEPSPEED_PREFIX = "module."


def to_official_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This model's state dict as the official module saves it (0-dim logit scales)."""
    return {k: v.reshape(()) if k in SCALAR_KEYS and v.numel() == 1 else v for k, v in state.items()}


def adapt_official_state(model: VLMo, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official VLMo state dict (or one of ours) → this model's names and sizes."""
    cfg = model.config
    state = {k.removeprefix(DEEPSPEED_PREFIX): v for k, v in state.items() if k not in INDEX_KEYS}
    for key in SCALAR_KEYS:
        if key in state and state[key].dim() == 0:
            state[key] = state[key].reshape(1)
    for key in TEXT_POSITION_KEYS:
        if key in state and state[key].shape[-2 if key.endswith("weight") else -1] > cfg.max_tokens:
            state[key] = state[key][: cfg.max_tokens] if key.endswith("weight") else state[key][:, : cfg.max_tokens]
    table = state.get("relative_position_bias_table")
    if table is not None and cfg.relative_position:
        try:
            state["relative_position_bias_table"] = resize_shared_table(
                table, cfg.num_patches_side, cfg.text_rel_pos_len
            )
        except ValueError as exc:
            raise CheckpointError(
                f"{exc}; check that text_rel_pos_len matches the checkpoint's "
                "(the official max_text_len_of_initckpt, 196)"
            ) from None
    pos_embed = state.get("transformer.pos_embed")
    if pos_embed is not None and not cfg.relative_position:
        state["transformer.pos_embed"] = resize_absolute_position_embedding(pos_embed, cfg.num_patches_side)
    types = state.get("token_type_embeddings.weight")
    if types is not None and types.shape[0] == 2 and "nlvr2" in cfg.task_heads:
        state["token_type_embeddings.weight"] = torch.cat([types, types[IMAGE_TOKEN_TYPE : IMAGE_TOKEN_TYPE + 1]])
    return state


def resize_absolute_position_embedding(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """``[1, 1 + g*g, D]`` → ``[1, 1 + grid*grid, D]``: patch positions resampled bicubically, CLS kept."""
    old = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if old * old != pos_embed.shape[1] - 1:
        raise CheckpointError(f"transformer.pos_embed has {pos_embed.shape[1]} positions: not CLS + a square grid")
    if old == grid:
        return pos_embed
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    width = pos_embed.shape[-1]
    patches = patches.reshape(1, old, old, width).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, width).to(pos_embed.dtype)
    return torch.cat([cls, patches], dim=1)


_BEIT_BLOCK_TABLE = re.compile(r"^blocks\.(\d+)\.attn\.relative_position_bias_table$")
_BEIT_SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"
# BEiT parts with no place in VLMo: its classifier, its pooled-output norm, saved index maps.
_BEIT_UNUSED = re.compile(
    r"^(head\.|fc_norm\.|rel_pos_bias\.relative_position_index|"
    r"blocks\.\d+\.attn\.relative_position_index|mask_token|lm_head\.)"
)


def from_beit_layout(model: VLMo, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A BEiT state dict → VLMo names; returns it and the BEiT keys VLMo has no place for.

    The shared table keeps the model's own cross and text rows; its image rows come from
    the BEiT tables (per block, or BEiT's one shared table repeated), fitted to the grid.
    """
    cfg = model.config
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    per_block: dict[int, torch.Tensor] = {}
    for key, value in state.items():
        match = _BEIT_BLOCK_TABLE.match(key)
        if match:
            per_block[int(match.group(1))] = value
        elif key == _BEIT_SHARED_TABLE:
            per_block = {i: value for i in range(cfg.depth)}
        elif _BEIT_UNUSED.match(key):
            dropped.append(key)
        else:
            key = re.sub(r"^blocks\.(\d+)\.mlp\.", r"blocks.\1.mlp_imag.", key)
            key = re.sub(r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.norm2_imag.", key)
            out["transformer." + key] = value
    if per_block:
        if not cfg.relative_position:
            raise CheckpointError(
                "this BEiT checkpoint uses relative positions but the model "
                f"{cfg.name} uses absolute ones; pick a relative-position preset"
            )
        if sorted(per_block) != list(range(cfg.depth)):
            raise CheckpointError(
                f"the BEiT checkpoint has position tables for blocks {sorted(per_block)}, "
                f"the model has {cfg.depth} blocks"
            )
        grid = cfg.num_patches_side
        image = torch.cat([resize_relative_position_bias_table(per_block[i], grid) for i in range(cfg.depth)], dim=1)
        table = model.relative_position_bias_table.detach().to("cpu", copy=True)
        table[: image_rows(grid)] = image.to(table.dtype)
        out["relative_position_bias_table"] = table
    return out, dropped
