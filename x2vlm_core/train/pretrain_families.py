"""What pre-training reads and optimises for each model family (X²-VLM, VLMo, CCLM).

One stage code runs them all (``pretrain.run_pretrain``); a family decides:

- which streams it can train on, and the datasets a stream reads when ``train.data.<stream>.datasets``
  is left unset (the shapes world and the default pipeline use these names);
- how a stream's samples become a batch (the family's tokenizer and masking);
- which objective turns that batch into loss terms.

X²-VLM: image_text, region_text, video_text (ITC + ITM + MLM, box losses).
VLMo ``vl`` stage: image_text (both ITC head pairs, ITM, MLM x 0.25); ``text`` stage: text (text-only MLM).
CCLM: image_text from multilingual captions, region_text, parallel_text (TTC + TTM + conditional MLM),
all read with its sentencepiece tokenizer.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from x2vlm_core.data.collate import (
    TextEncoder, pretrain_image_text_batch, pretrain_region_batch, pretrain_text_batch, pretrain_video_text_batch,
)
from x2vlm_core.errors import ConfigError
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.pretrain_objective import STREAM_LOSSES as XVLM_STREAM_LOSSES

STREAMS = ("image_text", "region_text", "video_text", "parallel_text", "text")
VLMO_STAGES = ("vl", "text")


def family_of(model_cfg: Any) -> str:
    return getattr(model_cfg, "family", None) or "x2vlm"


def default_datasets(model_cfg: Any, cfg: TrainConfig) -> dict[str, list[str]]:
    """The datasets each stream reads when its ``datasets`` is unset: the family's recipe."""
    family = family_of(model_cfg)
    if family == "vlmo":
        return {"image_text": ["pretrain_image_text"]} if cfg.stage == "vl" else {}
    if family == "cclm":
        return {"image_text": ["pretrain_multilingual"], "region_text": ["pretrain_region_text"],
                "parallel_text": ["pretrain_parallel_text"]}
    return {"image_text": ["pretrain_image_text"], "region_text": ["pretrain_region_text"]}


def allowed_streams(model_cfg: Any, cfg: TrainConfig) -> tuple[str, ...]:
    family = family_of(model_cfg)
    if family == "vlmo":
        return ("image_text",) if cfg.stage == "vl" else ("text",)
    if family == "cclm":
        return ("image_text", "region_text", "parallel_text")
    return ("image_text", "region_text", "video_text")


def check_stage(model_cfg: Any, cfg: TrainConfig) -> None:
    if family_of(model_cfg) == "vlmo":
        if cfg.stage == "image":
            raise ConfigError("train.stage=image is BEiT's masked image modeling, which this stage does not run; "
                              "start the text or vl stage from a BEiT checkpoint with --init instead")
        if cfg.stage not in VLMO_STAGES:
            raise ConfigError(f"train.stage {cfg.stage!r} is not a VLMo pre-training stage; use one of "
                              f"{', '.join(VLMO_STAGES)}")
    elif cfg.stage != "vl":
        raise ConfigError(f"train.stage={cfg.stage} applies to VLMo models only; model {model_cfg.name} trains "
                          "all its parts at once (leave train.stage at vl)")


def resolve_streams(model_cfg: Any, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every unset stream's datasets filled from the family's recipe; refuses streams it cannot train."""
    check_stage(model_cfg, cfg)
    defaults = default_datasets(model_cfg, cfg)
    allowed = allowed_streams(model_cfg, cfg)
    data = cfg.data
    for name in STREAMS:
        stream = getattr(data, name)
        if stream.datasets is None:
            data = dataclasses.replace(data, **{name: dataclasses.replace(stream, datasets=list(defaults.get(name, [])))})
        elif stream.datasets and name not in allowed:
            stage = f" in its {cfg.stage} stage" if family_of(model_cfg) == "vlmo" else ""
            raise ConfigError(f"train.data.{name} is on, but model {model_cfg.name} ({family_of(model_cfg)}) cannot "
                              f"train on it{stage}; it trains on {', '.join(allowed)}. Set "
                              f"train.data.{name}.datasets=[]")
    return dataclasses.replace(cfg, data=data)


def _with_itm_ignored(objective: Callable[..., dict]) -> Callable[..., dict]:
    def losses(model, batch, with_itm: bool = True):  # text-only MLM has no matching term to stop
        return objective(model, batch)

    return losses


def stream_losses(model_cfg: Any) -> dict[str, Callable[..., dict]]:
    """``stream -> (model, batch, with_itm) -> {name: loss}`` of the family."""
    family = family_of(model_cfg)
    if family == "vlmo":
        from x2vlm_core.models import vlmo_objectives

        return {"image_text": vlmo_objectives.image_text_losses,
                "text": _with_itm_ignored(vlmo_objectives.text_only_losses)}
    if family == "cclm":
        from x2vlm_core.models import cclm_objectives

        def parallel(model, batch, with_itm: bool = True):
            return cclm_objectives.parallel_text_losses(model, batch, with_ttm=with_itm)

        return {"image_text": cclm_objectives.image_caption_losses,
                "region_text": XVLM_STREAM_LOSSES["region_text"], "parallel_text": parallel}
    return dict(XVLM_STREAM_LOSSES)


def stream_collates(model_cfg: Any, cfg: TrainConfig, region_batch_size: int) -> dict[str, Callable[..., dict]]:
    """``stream -> collate(samples) -> batch`` with the family's tokenizer(s) and masking."""
    if family_of(model_cfg) == "cclm":
        from x2vlm_core.data.multilingual_collate import (
            CAPTION_MASKING, PARALLEL_MAX_TOKENS, parallel_text_batch, pretrain_multilingual_batch, text_encoder_for,
        )

        text = text_encoder_for(model_cfg)
        return {
            # CCLM's recipe: token spans masked at 0.4 (train.masking is X²-VLM's whole-word setting).
            "image_text": functools.partial(pretrain_multilingual_batch, text=text, image_res=model_cfg.image_res,
                                            masking=CAPTION_MASKING, augment=cfg.augment),
            "region_text": functools.partial(pretrain_region_batch, text=text, image_res=model_cfg.image_res,
                                             grid=model_cfg.num_patches_side, max_regions=cfg.max_regions,
                                             batch_size=region_batch_size, masking=cfg.masking, augment=cfg.augment),
            "parallel_text": functools.partial(parallel_text_batch, text=text_encoder_for(model_cfg, PARALLEL_MAX_TOKENS)),
        }
    text = TextEncoder(model_cfg.tokenizer, model_cfg.max_tokens)
    return {
        "image_text": functools.partial(pretrain_image_text_batch, text=text, image_res=model_cfg.image_res,
                                        masking=cfg.masking, augment=cfg.augment),
        "region_text": functools.partial(pretrain_region_batch, text=text, image_res=model_cfg.image_res,
                                         grid=model_cfg.num_patches_side, max_regions=cfg.max_regions,
                                         batch_size=region_batch_size, masking=cfg.masking, augment=cfg.augment),
        "video_text": functools.partial(pretrain_video_text_batch, text=text, image_res=model_cfg.image_res,
                                        frame_len=getattr(model_cfg, "frame_len", 0), masking=cfg.masking,
                                        augment=cfg.augment),
        "text": functools.partial(pretrain_text_batch, text=text, masking=cfg.masking),
    }


def prepare_vlmo_stage(model, cfg: TrainConfig, init: str | None) -> None:
    """Start a VLMo from ``init`` (a BEiT checkpoint, or any checkpoint/model folder) and freeze for the stage."""
    from pathlib import Path

    from x2vlm_core.release.model_folder import init_from, load_state_file
    from x2vlm_core.models.vlmo_stages import init_from_beit, stage_trainable

    if init:
        if Path(init).is_file() and is_beit_state(load_state_file(init)):
            init_from_beit(model, init)
        else:
            init_from(model, init)
    stage_trainable(model, cfg.stage)


def is_beit_state(state: dict[str, Any]) -> bool:
    """A BEiT checkpoint (the image-only stage's result): a bare ViT layout, no VLMo ``transformer.`` tree."""
    keys = list(state)
    return (any(k.startswith(("blocks.", "patch_embed.")) for k in keys)
            and not any(k.startswith(("transformer.", "vision_encoder.", "text_encoder.")) for k in keys))
