"""The model-family registry: ``create_model(name)`` over every family's presets, and the lookups
the stages make instead of branching on a family (``family_of(config).task("vqa")``, ...).

A family registers by being listed in ``FAMILY_MODULES``; its ``family`` module defines ``FAMILY``
(see ``spec.ModelFamily``). Families load on first use, so importing this module is cheap and
a family's package may itself import the shared stages.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from x2vlm_core.config_io import deep_merge
from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import ModelFamily, TextEncoder, VisionLanguageModel

# One line per family. A saved config.yaml without ``family:`` is X²-VLM's (the first).
FAMILY_MODULES = (
    "x2vlm_core.families.x2vlm.family",
    "x2vlm_core.families.vlmo.family",
    "x2vlm_core.families.cclm.family",
    "x2vlm_core.families.xvlm.family",
)

__all__ = [
    "ModelFamily",
    "VisionLanguageModel",
    "all_families",
    "config_from_dict",
    "create_model",
    "family_of",
    "get_family",
    "model_config",
    "preset_names",
    "text_encoder_for",
]


@functools.cache
def all_families() -> dict[str, ModelFamily]:
    families = {}
    for module in FAMILY_MODULES:
        family: ModelFamily = importlib.import_module(module).FAMILY
        if family.name in families:
            raise RuntimeError(f"two families are named {family.name!r}")
        families[family.name] = family
    return families


def get_family(name: str) -> ModelFamily:
    families = all_families()
    if name not in families:
        raise ConfigError(f"unknown model family {name!r}; known: {', '.join(families)}")
    return families[name]


def family_of(config_or_model: Any) -> ModelFamily:
    """The family of a model config or a model (by its class)."""
    for family in all_families().values():
        if type(config_or_model) in (family.config_class, family.model_class):
            return family
    raise ConfigError(f"{type(config_or_model).__name__} belongs to no registered model family")


def preset_names() -> list[str]:
    return sorted(name for family in all_families().values() for name in family.presets)


def model_config(name: str, **overrides: Any) -> Any:
    """The config of preset ``name`` with nested ``overrides``."""
    for family in all_families().values():
        if name in family.presets:
            return family.build_config(deep_merge({"name": name, **family.presets[name]}, overrides), f"model {name}")
    raise ConfigError(f"unknown model preset {name!r}; available presets: {', '.join(preset_names())}")


def config_from_dict(data: dict[str, Any], where: str) -> Any:
    """A saved model config (``config.yaml``), of the family it names (none: X²-VLM)."""
    family = get_family(data.get("family") or next(iter(all_families())))
    return family.build_config(data, where)


def create_model(name_or_config: Any, **overrides: Any) -> Any:
    """Build a model from a preset name (with nested overrides) or a full config of its family."""
    if isinstance(name_or_config, str):
        config = model_config(name_or_config, **overrides)
    elif overrides:
        raise ConfigError("overrides apply to preset names only; edit the config instead")
    else:
        config = name_or_config
    return family_of(config).model_class(config)


def text_encoder_for(config: Any, max_tokens: int | None = None) -> TextEncoder:
    """The tokenizer a model reads with, at ``max_tokens`` (default: the model's own)."""
    return family_of(config).text_encoder(config, max_tokens)
