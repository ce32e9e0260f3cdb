"""X²-VLM's pre-training recipe: image-text, region-text and video-text streams with ITC + ITM + MLM
and the box losses (``train.pretrain_objective``), read with the BERT WordPiece tokenizer.

Its collates serve VLMo too, which reads the same tokenizer (``text_collates``).
"""

from __future__ import annotations

import functools
from typing import Any

from x2vlm_core.data.collate import (
    TextEncoder,
    pretrain_image_text_batch,
    pretrain_region_batch,
    pretrain_text_batch,
    pretrain_video_text_batch,
)
from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import Collate, PretrainRecipe
from x2vlm_core.train.pretrain_objective import STREAM_LOSSES


def single_stage(model_cfg: Any, cfg: Any) -> None:
    """Families that train all their parts at once have only the ``vl`` stage (VLMo has more)."""
    if cfg.stage != "vl":
        raise ConfigError(
            f"train.stage={cfg.stage} applies to VLMo models only; model {model_cfg.name} trains "
            "all its parts at once (leave train.stage at vl)"
        )


def init_weights(model: Any, cfg: Any, init: str | None) -> None:
    if init:
        from x2vlm_core.release.model_folder import init_from

        init_from(model, init)


def region_collate(model_cfg: Any, cfg: Any, text: Any, region_batch_size: int) -> functools.partial:
    return functools.partial(
        pretrain_region_batch,
        text=text,
        image_res=model_cfg.image_res,
        grid=model_cfg.num_patches_side,
        max_regions=cfg.max_regions,
        batch_size=region_batch_size,
        masking=cfg.masking,
        augment=cfg.augment,
    )


def text_collates(model_cfg: Any, cfg: Any, region_batch_size: int) -> dict[str, Collate]:
    text = TextEncoder(model_cfg.tokenizer, model_cfg.max_tokens)
    return {
        "image_text": functools.partial(
            pretrain_image_text_batch,
            text=text,
            image_res=model_cfg.image_res,
            masking=cfg.masking,
            augment=cfg.augment,
        ),
        "region_text": region_collate(model_cfg, cfg, text, region_batch_size),
        "video_text": functools.partial(
            pretrain_video_text_batch,
            text=text,
            image_res=model_cfg.image_res,
            frame_len=getattr(model_cfg, "frame_len", 0),
            masking=cfg.masking,
            augment=cfg.augment,
        ),
        "text": functools.partial(pretrain_text_batch, text=text, masking=cfg.masking),
    }


RECIPE = PretrainRecipe(
    streams=lambda cfg: ("image_text", "region_text", "video_text"),
    default_datasets=lambda cfg: {"image_text": ["pretrain_image_text"], "region_text": ["pretrain_region_text"]},
    check_stage=single_stage,
    losses=lambda: dict(STREAM_LOSSES),
    collates=text_collates,
    start=init_weights,
)
