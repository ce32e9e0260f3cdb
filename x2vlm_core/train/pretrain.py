"""Pre-training: image-text and region-text batches from shards, summed losses."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from x2vlm_core.checkpoint import init_from
from x2vlm_core.data.collate import TextEncoder, image_text_batch, region_batch
from x2vlm_core.data.shards import list_shards
from x2vlm_core.data.streaming import shard_loader
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.registry import create_model
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import DistInfo, init_distributed
from x2vlm_core.train.loop import run_training
from x2vlm_core.train.pretrain_objective import pretraining_losses
from x2vlm_core.utils.seed import seed_everything

IMAGE_TEXT = "pretrain_image_text"
REGION_TEXT = "pretrain_region_text"


def _loader(shards_root: str, dataset: str, batch_size: int, collate, cfg: TrainConfig,
            info: DistInfo, seed_offset: int) -> Iterator[Any]:
    return shard_loader(list_shards(shards_root, dataset, "train"), batch_size, collate, rank=info.rank,
                        world_size=info.world_size, seed=cfg.seed + seed_offset,
                        shuffle_buffer=cfg.shuffle_buffer, num_workers=cfg.num_workers)


def run_pretrain(model_cfg: ModelConfig, cfg: TrainConfig, shards_root: str | Path, output_dir: str | Path,
                 checkpoint_dir: str | Path, init: str | None = None) -> dict[str, Any]:
    info = init_distributed()
    seed_everything(cfg.seed + info.rank)
    model = create_model(model_cfg)
    if init:
        init_from(model, init)
    text = TextEncoder(model_cfg.tokenizer, model_cfg.max_tokens)
    rng = random.Random(cfg.seed * 1000 + info.rank)
    image_collate = functools.partial(image_text_batch, text=text, image_res=model_cfg.image_res,
                                      masking=cfg.masking, rng=rng)
    region_collate = functools.partial(region_batch, text=text, image_res=model_cfg.image_res,
                                       grid=model_cfg.num_patches_side, max_regions=cfg.max_regions,
                                       masking=cfg.masking, rng=rng)
    images = _loader(str(shards_root), IMAGE_TEXT, cfg.batch_size, image_collate, cfg, info, 0)
    regions = _loader(str(shards_root), REGION_TEXT, cfg.region_batch_images, region_collate, cfg, info, 1)

    def objective(step: int):
        with_itm = not (cfg.stop_itm_after and step >= cfg.stop_itm_after)
        return functools.partial(pretraining_losses, with_itm=with_itm)

    return run_training(model, objective, zip(images, regions), cfg, info, output_dir, checkpoint_dir,
                        micro_batch=cfg.batch_size, description="pretrain")
