"""The pre-training streams, and which of them a run trains on.

A family's recipe (``ModelFamily.pretrain``) names the streams it can train on and the datasets
a stream reads when ``train.data.<stream>.datasets`` is left unset (the shapes world and the
default pipeline use these names); a stream the family cannot train on is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families import family_of
from x2vlm_core.train.config import TrainConfig

STREAMS = ("image_text", "region_text", "video_text", "parallel_text", "text")


def resolve_streams(model_cfg: Any, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every unset stream's datasets filled from the family's recipe; refuses streams it cannot train."""
    family = family_of(model_cfg)
    recipe = family.pretrain
    recipe.check_stage(model_cfg, cfg)
    defaults, allowed = recipe.default_datasets(cfg), recipe.streams(cfg)
    data = cfg.data
    for name in STREAMS:
        stream = getattr(data, name)
        if stream.datasets is None:
            data = dataclasses.replace(
                data, **{name: dataclasses.replace(stream, datasets=list(defaults.get(name, [])))}
            )
        elif stream.datasets and name not in allowed:
            raise ConfigError(
                f"train.data.{name} is on, but model {model_cfg.name} ({family.name}) cannot "
                f"train on it (train.stage={cfg.stage}); it trains on {', '.join(allowed)}. Set "
                f"train.data.{name}.datasets=[]"
            )
    return dataclasses.replace(cfg, data=data)


def active_streams(cfg: TrainConfig) -> list[str]:
    return [name for name in STREAMS if getattr(cfg.data, name).datasets]
