"""X-VLM's pre-training recipe: image-text and region-text streams with ITC + ITM + MLM and the box
losses (the shared ``train.pretrain_objective``), read with the BERT WordPiece tokenizer."""

from __future__ import annotations

from typing import Any

from x2vlm_core.families.spec import PretrainRecipe
from x2vlm_core.families.x2vlm.pretrain import init_weights, single_stage, text_collates
from x2vlm_core.train.pretrain_objective import STREAM_LOSSES

STREAMS = ("image_text", "region_text")  # X-VLM reads no video


def collates(model_cfg: Any, cfg: Any, region_batch_size: int) -> dict[str, Any]:
    every = text_collates(model_cfg, cfg, region_batch_size)
    return {stream: every[stream] for stream in STREAMS}


RECIPE = PretrainRecipe(
    streams=lambda cfg: STREAMS,
    default_datasets=lambda cfg: {"image_text": ["pretrain_image_text"], "region_text": ["pretrain_region_text"]},
    check_stage=single_stage,
    losses=lambda: {stream: STREAM_LOSSES[stream] for stream in STREAMS},
    collates=collates,
    start=init_weights,
)
