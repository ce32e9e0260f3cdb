"""The one training loop behind pre-training and every fine-tune task.

It owns the DeepSpeed engine, logging, periodic DeepSpeed checkpoints, resume, and
the final model folder. What differs between tasks is only the objective and the
batches it is fed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from x2vlm_core.checkpoint import save_model_dir
from x2vlm_core.config_io import to_dict
from x2vlm_core.data.streaming import to_device
from x2vlm_core.errors import X2VLMError
from x2vlm_core.models.xvlm import XVLM
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import DistInfo
from x2vlm_core.train.engine import build_engine

log = logging.getLogger(__name__)

Objective = Callable[..., dict[str, torch.Tensor]]


def _mean_across_ranks(values: dict[str, float], world_size: int) -> dict[str, float]:
    if world_size == 1:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {n: v / world_size for n, v in zip(names, tensor.tolist())}


def run_training(
    model: XVLM,
    objective: Callable[[int], Objective],
    batches: Iterator[tuple[dict[str, torch.Tensor], ...]],
    cfg: TrainConfig,
    dist_info: DistInfo,
    output_dir: str | Path,
    checkpoint_dir: str | Path,
    micro_batch: int,
    description: str = "train",
) -> dict[str, Any]:
    """Train for ``cfg.steps`` steps and write the model folder to ``output_dir``.

    ``objective(step)`` returns the loss function for that step (so ITM can be switched
    off after N steps). DeepSpeed checkpoints go to ``checkpoint_dir``; if one exists,
    training resumes from it.
    """
    output_dir = Path(output_dir)
    ckpt_dir = Path(checkpoint_dir)
    engine = build_engine(model, cfg, dist_info.device, micro_batch, XVLM.new_head_prefixes)
    start = 0
    if (ckpt_dir / "latest").is_file():
        _, client = engine.load_checkpoint(str(ckpt_dir))
        start = int(client["step"])
        log.info("resumed %s from %s at step %d", description, ckpt_dir, start)

    history: list[dict[str, float]] = []
    started = time.time()
    bar = tqdm(total=cfg.steps, initial=start, desc=description, disable=not dist_info.is_main, mininterval=2)
    for step in range(start, cfg.steps):
        batch = tuple(to_device(b, dist_info.device) for b in next(batches))
        losses = engine(objective(step), *batch)
        total = sum(losses.values())
        engine.backward(total)
        engine.step()
        model.clamp_temp()
        bar.update(1)
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.log_every == 0 or last:
            # .item() syncs with the device, so only on logging steps.
            values = {k: float(v.detach()) for k, v in losses.items()}
            values["loss"] = float(total.detach())
            values = _mean_across_ranks(values, dist_info.world_size)
            if not math.isfinite(values["loss"]):
                raise X2VLMError(f"{description}: loss became {values['loss']} at step {step + 1}; "
                                 "lower optim.lr or check the data")
            values.update(step=step + 1, lr=engine.get_lr()[0])
            history.append(values)
            if dist_info.is_main:
                log.info(json.dumps({"event": description, **{k: round(v, 5) for k, v in values.items()}}))
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and not last:
            engine.save_checkpoint(str(ckpt_dir), tag=f"step{step + 1}", client_state={"step": step + 1})
    bar.close()

    summary = {
        "steps": cfg.steps,
        "resumed_from_step": start,
        "seconds": round(time.time() - started, 2),
        "world_size": dist_info.world_size,
        "final": history[-1] if history else {},
        "history": history,
        "train_config": to_dict(cfg),
    }
    if dist_info.is_main:
        save_model_dir(model, output_dir, extra=summary)
    if dist_info.world_size > 1:
        dist.barrier()
    return summary
