"""CCLM's pre-training: image-text from multilingual captions, region-text, and parallel text
(TTC + TTM + conditional MLM), all read with its sentencepiece tokenizer."""

from __future__ import annotations

import functools
from typing import Any

from x2vlm_core.families.cclm import objectives
from x2vlm_core.families.cclm.collate import (
    CAPTION_MASKING,
    PARALLEL_MAX_TOKENS,
    parallel_text_batch,
    pretrain_multilingual_batch,
    xlmr_text_encoder,
)
from x2vlm_core.families.spec import Collate, PretrainRecipe
from x2vlm_core.families.x2vlm.pretrain import init_weights, region_collate, single_stage
from x2vlm_core.train.pretrain_objective import STREAM_LOSSES


def collates(model_cfg: Any, cfg: Any, region_batch_size: int) -> dict[str, Collate]:
    text = xlmr_text_encoder(model_cfg)
    return {
        # CCLM's recipe: token spans masked at 0.4 (train.masking is X²-VLM's whole-word setting).
        "image_text": functools.partial(
            pretrain_multilingual_batch,
            text=text,
            image_res=model_cfg.image_res,
            masking=CAPTION_MASKING,
            augment=cfg.augment,
        ),
        "region_text": region_collate(model_cfg, cfg, text, region_batch_size),
        "parallel_text": functools.partial(parallel_text_batch, text=xlmr_text_encoder(model_cfg, PARALLEL_MAX_TOKENS)),
    }


def _parallel(model: Any, batch: dict[str, Any], with_itm: bool = True) -> dict[str, Any]:
    return objectives.parallel_text_losses(model, batch, with_ttm=with_itm)


RECIPE = PretrainRecipe(
    streams=lambda cfg: ("image_text", "region_text", "parallel_text"),
    default_datasets=lambda cfg: {
        "image_text": ["pretrain_multilingual"],
        "region_text": ["pretrain_region_text"],
        "parallel_text": ["pretrain_parallel_text"],
    },
    check_stage=single_stage,
    losses=lambda: {
        "image_text": objectives.image_caption_losses,
        "region_text": STREAM_LOSSES["region_text"],
        "parallel_text": _parallel,
    },
    collates=collates,
    start=init_weights,
)
