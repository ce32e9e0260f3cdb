"""VLMo's staged pre-training: the ``vl`` stage trains on image-text pairs (both ITC head pairs,
ITM, MLM x 0.25), the ``text`` stage on text alone (text-only MLM). BEiT's masked image modeling
(``image``) is not run here: a stage starts from a BEiT checkpoint with ``--init`` instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import PretrainRecipe
from x2vlm_core.families.vlmo import objectives
from x2vlm_core.families.x2vlm.pretrain import text_collates

STAGES = ("vl", "text")


def check_stage(model_cfg: Any, cfg: Any) -> None:
    if cfg.stage == "image":
        raise ConfigError(
            "train.stage=image is BEiT's masked image modeling, which this stage does not run; "
            "start the text or vl stage from a BEiT checkpoint with --init instead"
        )
    if cfg.stage not in STAGES:
        raise ConfigError(f"train.stage {cfg.stage!r} is not a VLMo pre-training stage; use one of {', '.join(STAGES)}")


def start_stage(model: Any, cfg: Any, init: str | None) -> None:
    """Start from ``init`` (a BEiT checkpoint, or any checkpoint/model folder) and freeze for the stage."""
    from x2vlm_core.families.vlmo.stages import init_from_beit, stage_trainable
    from x2vlm_core.release.model_folder import init_from, load_state_file

    if init:
        if Path(init).is_file() and is_beit_state(load_state_file(init)):
            init_from_beit(model, init)
        else:
            init_from(model, init)
    stage_trainable(model, cfg.stage)


def is_beit_state(state: dict[str, Any]) -> bool:
    """A BEiT checkpoint (the image-only stage's result): a bare ViT layout, no VLMo ``transformer.`` tree."""
    keys = list(state)
    return any(k.startswith(("blocks.", "patch_embed.")) for k in keys) and not any(
        k.startswith(("transformer.", "vision_encoder.", "text_encoder.")) for k in keys
    )


def _text_only(model: Any, batch: dict[str, Any], with_itm: bool = True) -> dict[str, Any]:
    return objectives.text_only_losses(model, batch)  # text-only MLM has no matching term to stop


RECIPE = PretrainRecipe(
    streams=lambda cfg: ("image_text",) if cfg.stage == "vl" else ("text",),
    default_datasets=lambda cfg: {"image_text": ["pretrain_image_text"]} if cfg.stage == "vl" else {},
    check_stage=check_stage,
    losses=lambda: {"image_text": objectives.image_text_losses, "text": _text_only},
    collates=text_collates,
    start=start_stage,
)
