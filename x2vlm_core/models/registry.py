"""``create_model(name, **overrides)``: presets over one typed config, as timm/OpenCLIP do."""

from __future__ import annotations

import copy
from typing import Any

from x2vlm_core.config_io import from_dict
from x2vlm_core.errors import ConfigError
from x2vlm_core.models.cclm import CCLM
from x2vlm_core.models.cclm_config import CCLM_PRESETS, CCLMConfig, cclm_config
from x2vlm_core.models.cclm_config import FAMILY as CCLM_FAMILY
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.vlmo import VLMo
from x2vlm_core.models.vlmo_config import FAMILY as VLMO_FAMILY
from x2vlm_core.models.vlmo_config import VLMO_PRESETS, VLMoConfig
from x2vlm_core.models.xvlm import XVLM

_BASE_VISION = {"width": 768, "depth": 12, "num_heads": 12, "patch_size": 16}
_LARGE_VISION = {"width": 1024, "depth": 24, "num_heads": 16, "patch_size": 16}
_BASE_TEXT = {"hidden_size": 768, "num_layers": 18, "fusion_start_at": 12, "num_heads": 12,
              "intermediate_size": 3072}
_LARGE_TEXT = {"hidden_size": 1024, "num_layers": 18, "fusion_start_at": 12, "num_heads": 16,
               "intermediate_size": 4096}

PRESETS: dict[str, dict[str, Any]] = {
    # BEiT-2 base + 12 text / 6 fusion BERT-base layers: 254.76M parameters.
    "x2vlm_base": {"vision": _BASE_VISION, "text": _BASE_TEXT},
    # BEiT-2 large + 12 text / 6 fusion BERT-large layers: 592.95M parameters.
    "x2vlm_large": {"vision": _LARGE_VISION, "text": _LARGE_TEXT},
    "x2vlm_base_video": {"vision": _BASE_VISION, "text": _BASE_TEXT, "frame_len": 3},
    "x2vlm_large_video": {"vision": _LARGE_VISION, "text": _LARGE_TEXT, "frame_len": 3},
    # A few hundred thousand weights besides the vocabulary: for tests and the local pipeline.
    # Trained from scratch, it needs an absolute position embedding to learn boxes in minutes.
    "x2vlm_tiny": {
        "image_res": 64, "embed_dim": 32, "max_tokens": 24,
        "vision": {"width": 64, "depth": 2, "num_heads": 4, "patch_size": 8, "drop_path_rate": 0.0,
                   "abs_pos_emb": True},
        "text": {"hidden_size": 64, "num_layers": 4, "fusion_start_at": 2, "num_heads": 4,
                 "intermediate_size": 128, "max_position_embeddings": 64},
    },
}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def model_config(name: str, **overrides: Any) -> ModelConfig | VLMoConfig | CCLMConfig:
    if name in CCLM_PRESETS:
        return cclm_config(_merge({"name": name, **CCLM_PRESETS[name]}, overrides), where=f"model {name}")
    if name in VLMO_PRESETS:
        return from_dict(VLMoConfig, _merge({"name": name, **VLMO_PRESETS[name]}, overrides), where=f"model {name}")
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; available presets: "
                          f"{', '.join(sorted([*PRESETS, *VLMO_PRESETS, *CCLM_PRESETS]))}")
    return from_dict(ModelConfig, _merge({"name": name, **PRESETS[name]}, overrides), where=f"model {name}")


def config_from_dict(data: dict[str, Any], where: str) -> ModelConfig | VLMoConfig | CCLMConfig:
    """A saved model config (``config.yaml``): VLMo's say ``family: vlmo``, X²-VLM's have no family."""
    family = data.get("family")
    if family == VLMO_FAMILY:
        return from_dict(VLMoConfig, data, where=where)
    if family == CCLM_FAMILY:
        return cclm_config(data, where=where)
    if family is not None:
        raise ConfigError(f"{where}: unknown model family {family!r}; known: {VLMO_FAMILY}, {CCLM_FAMILY} "
                          "(X²-VLM configs have none)")
    return from_dict(ModelConfig, data, where=where)


def create_model(name_or_config: str | ModelConfig | VLMoConfig | CCLMConfig, **overrides: Any) -> XVLM | VLMo | CCLM:
    """Build a model from a preset name (with nested overrides) or a full config of its family."""
    if isinstance(name_or_config, (ModelConfig, VLMoConfig, CCLMConfig)):
        if overrides:
            raise ConfigError("overrides apply to preset names only; edit the config instead")
        config = name_or_config
    else:
        config = model_config(name_or_config, **overrides)
    if isinstance(config, CCLMConfig):
        return CCLM(config)
    return VLMo(config) if isinstance(config, VLMoConfig) else XVLM(config)
