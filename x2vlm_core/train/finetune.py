"""Fine-tuning one task from a pre-trained model folder, with the shared training loop."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from x2vlm_core.checkpoint import load_model_dir
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.shards import list_shards
from x2vlm_core.data.streaming import shard_loader
from x2vlm_core.tasks import get_task
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import init_distributed
from x2vlm_core.train.loop import run_training
from x2vlm_core.utils.seed import seed_everything


def run_finetune(task_name: str, pretrained: str | Path, cfg: TrainConfig, shards_root: str | Path,
                 output_dir: str | Path, checkpoint_dir: str | Path) -> dict[str, Any]:
    task = get_task(task_name)
    shards = list_shards(str(shards_root), task.DATASET, task.TRAIN_SPLIT)
    info = init_distributed()
    seed_everything(cfg.seed + info.rank)
    model = load_model_dir(pretrained)
    text = TextEncoder(model.config.tokenizer, model.config.max_tokens)
    collate = functools.partial(task.train_collate, text=text, image_res=model.config.image_res,
                                rng=random.Random(cfg.seed * 1000 + info.rank))
    loader = shard_loader(shards, cfg.batch_size, collate, rank=info.rank, world_size=info.world_size,
                          seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, num_workers=cfg.num_workers)
    batches = ((batch,) for batch in loader)
    return run_training(model, lambda step: task.objective, batches, cfg, info, output_dir, checkpoint_dir,
                        micro_batch=cfg.batch_size, description=f"finetune-{task_name}")
