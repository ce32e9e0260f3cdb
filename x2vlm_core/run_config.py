"""A run config: which model to build and how to train it, from YAML plus overrides.

    model: x2vlm_tiny            # a preset, or {preset: x2vlm_base, image_res: 384, vision: {...}}
    train: {steps: 1000, batch_size: 64, optim: {lr: 1.0e-4}}

With no preset, the model is ``base_model`` (the config of a model folder to start from) under the
``model:`` keys given.
"""

from __future__ import annotations

from typing import Any

from x2vlm_core.config_io import apply_overrides, deep_merge, from_dict, load_yaml, to_dict
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import family_of, model_config
from x2vlm_core.train.config import TrainConfig

TOP_LEVEL_KEYS = ("model", "train")


def load_run_config(
    path: str | None,
    preset: str | None = None,
    overrides: list[str] | None = None,
    model_needed: bool = True,
    base_model: Any = None,
) -> tuple[Any, TrainConfig]:
    data: dict[str, Any] = load_yaml(path) if path else {}
    if isinstance(data.get("model"), str):
        data["model"] = {"preset": data["model"]}
    data = apply_overrides(data, overrides or [])
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {unknown} in run config; valid keys are: {', '.join(TOP_LEVEL_KEYS)}"
        )
    model_part = dict(data.get("model") or {})
    if preset:
        model_part["preset"] = preset
    train_cfg = from_dict(TrainConfig, data.get("train"), where="train")
    if not model_needed:
        return None, train_cfg
    name = model_part.pop("preset", None)
    if not name and base_model is not None:
        return family_of(base_model).build_config(deep_merge(to_dict(base_model), model_part), "model"), train_cfg
    if not name:
        raise ConfigError(
            "no model preset given: pass --model (e.g. --model x2vlm_tiny) or set model.preset, "
            "or --init a model folder"
        )
    return model_config(name, **model_part), train_cfg
