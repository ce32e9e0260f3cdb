"""The official X-VLM CLIP-ViT names (``models/clip_vit.py``, Hugging Face's CLIP layout) ⇄ timm's ViT.

The official encoder keeps separate q/k/v projections, a ``[D]`` class embedding and an
``nn.Embedding`` of positions with a ``position_ids`` buffer; timm's ``VisionTransformer`` (our
encoder) fuses q, k, v into one ``qkv`` linear (in that order) and keeps ``[1, 1, D]`` /
``[1, N, D]`` parameters. Everything else is a rename. Keys are those of the whole model
(``vision_encoder.`` first); keys outside the vision encoder pass through.
"""

from __future__ import annotations

import re

import torch

from x2vlm_core.errors import CheckpointError

PREFIX = "vision_encoder."
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.*)$")  # official
_QKV_KEY = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.([qkv]_proj)\.(weight|bias)$")  # official
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.*)$")  # ours
_RENAMES = {  # inside one encoder layer: official → ours
    "self_attn.out_proj": "attn.proj",
    "layer_norm1": "norm1",
    "layer_norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_TOP = {"patch_embed.weight": "patch_embed.proj.weight", "pre_layrnorm": "norm_pre", "post_layernorm": "norm"}
_QKV = ("q_proj", "k_proj", "v_proj")


def is_official_clip_layout(state: dict[str, torch.Tensor]) -> bool:
    return f"{PREFIX}encoder.layers.0.self_attn.q_proj.weight" in state


def is_clip_model(state: dict[str, torch.Tensor]) -> bool:
    """Our CLIP-ViT model: the only encoder with a LayerNorm before its blocks (DeiT's is an identity)."""
    return f"{PREFIX}norm_pre.weight" in state


def clip_from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not key.startswith(PREFIX):
            out[key] = value
            continue
        name = key[len(PREFIX) :]
        layer, projection = _LAYER.match(name), _QKV_KEY.match(name)
        if name == "position_ids":  # derived from the grid; the official loader drops it as well
            continue
        if name == "class_embedding":
            out[f"{PREFIX}cls_token"] = value.reshape(1, 1, -1)
        elif name == "pos_embed.weight":
            out[f"{PREFIX}pos_embed"] = value.unsqueeze(0)
        elif projection:
            qkv.setdefault((int(projection[1]), projection[3]), {})[projection[2]] = value
        elif layer:
            out[f"{PREFIX}blocks.{layer[1]}.{_rename(layer[2], _RENAMES)}"] = value
        else:
            out[PREFIX + _rename(name, _TOP)] = value
    for (index, kind), parts in qkv.items():
        missing = [p for p in _QKV if p not in parts]
        if missing:
            raise CheckpointError(
                f"{PREFIX}encoder.layers.{index}.self_attn.{missing[0]}.{kind} is missing from the checkpoint, "
                "which has the layer's other projections: the file is incomplete; export it again"
            )
        out[f"{PREFIX}blocks.{index}.attn.qkv.{kind}"] = torch.cat([parts[p] for p in _QKV])
    return out


def clip_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our CLIP-ViT model's weights in the official layout, its ``position_ids`` buffer included."""
    back_layer = {ours: official for official, ours in _RENAMES.items()}
    back_top = {ours: official for official, ours in _TOP.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(PREFIX):
            out[key] = value
            continue
        name = key[len(PREFIX) :]
        block = _BLOCK.match(name)
        if name == "cls_token":
            out[f"{PREFIX}class_embedding"] = value.reshape(-1)
        elif name == "pos_embed":
            out[f"{PREFIX}pos_embed.weight"] = value.squeeze(0)
            out[f"{PREFIX}position_ids"] = torch.arange(value.shape[1]).unsqueeze(0)
        elif block and block[2].startswith("attn.qkv."):
            kind = block[2].rsplit(".", 1)[1]
            for projection, part in zip(_QKV, value.chunk(3)):
                out[f"{PREFIX}encoder.layers.{block[1]}.self_attn.{projection}.{kind}"] = part
        elif block:
            out[f"{PREFIX}encoder.layers.{block[1]}.{_rename(block[2], back_layer)}"] = value
        else:
            out[PREFIX + _rename(name, back_top)] = value
    return out


def _rename(name: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name
