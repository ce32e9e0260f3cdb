"""Fine-tuning one task from a pre-trained model folder, with the shared training loop."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.streaming import dataset_shards, shard_loader
from x2vlm_core.tasks import get_task
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import init_distributed
from x2vlm_core.train.engine import micro_batch_size
from x2vlm_core.train.loop import run_training
from x2vlm_core.utils.seed import seed_everything


def run_finetune(task_name: str, pretrained: str | Path, cfg: TrainConfig, shards_root: str | Path,
                 output_dir: str | Path, checkpoint_dir: str | Path) -> dict[str, Any]:
    """Train ``task_name`` for ``cfg.steps`` steps; the task model folder (with its heads) goes to ``output_dir``."""
    task = get_task(task_name)
    shards = dataset_shards(str(shards_root), task.DATASET, task.TRAIN_SPLIT)
    info = init_distributed()
    micro_batch = micro_batch_size(cfg.batch_size, cfg, info.world_size)  # train.batch_size is global
    seed_everything(cfg.seed + info.rank)
    model = task.build_model(pretrained, shards_root)
    text = TextEncoder(model.config.tokenizer, model.config.max_tokens)
    options = task.collate_options(model) if hasattr(task, "collate_options") else {}
    collate = functools.partial(task.train_collate, text=text, config=model.config,
                                rng=random.Random(cfg.seed * 1000 + info.rank), **options)
    loader = shard_loader(shards, micro_batch, collate, rank=info.rank, world_size=info.world_size,
                          seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, num_workers=cfg.num_workers)
    batches = ((batch,) for batch in loader)
    return run_training(model, lambda step: task.objective, batches, cfg, info, output_dir, checkpoint_dir,
                        micro_batch=micro_batch, description=f"finetune-{task_name}")
