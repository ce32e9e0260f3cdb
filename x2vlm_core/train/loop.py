"""The one training loop behind pre-training and every fine-tune task.

It owns the DeepSpeed engine, gradient accumulation, logging, periodic checkpoints, exact
resume and the final model folder. What differs between tasks is only the objective and
the batches it is fed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from x2vlm_core.config_io import to_dict
from x2vlm_core.data.streaming import to_device
from x2vlm_core.errors import CheckpointError
from x2vlm_core.models.heads import TEMP_RANGE
from x2vlm_core.release.model_folder import save_model_dir
from x2vlm_core.train import checkpointing
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import DistInfo, barrier, from_main
from x2vlm_core.train.durable import GcsMirror
from x2vlm_core.train.engine import build_engine, check_itm_negatives
from x2vlm_core.train.preemption import StopOnSigterm, TrainingStopped
from x2vlm_core.train.progress import TrainingLog

log = logging.getLogger(__name__)

Objective = Callable[..., dict[str, torch.Tensor]]
Batches = Iterator[tuple[dict[str, torch.Tensor], ...]]


def clamp_temperature(engine, model: torch.nn.Module) -> None:
    """Keep the ITC temperature in [0.001, 0.5], in the module and in DeepSpeed's fp32 master copy.

    Only models with a ``temp`` parameter (X²-VLM, CCLM); VLMo's logit scales stay unclamped, as officially.
    """
    temp = getattr(model, "temp", None)
    if temp is None:
        return
    import deepspeed
    from deepspeed.utils import safe_set_full_fp32_param

    with torch.no_grad():
        if engine.zero_optimization_stage() == 3:  # partitioned: gather, clamp on rank 0, scatter back
            with deepspeed.zero.GatheredParameters([temp], modifier_rank=0):
                temp.clamp_(*TEMP_RANGE)
        else:  # no branch on the value: reading it would wait for the GPU every step
            temp.clamp_(*TEMP_RANGE)
            safe_set_full_fp32_param(temp, temp.float())


def _batch_size_and_tokens(batch: tuple[dict[str, torch.Tensor], ...]) -> tuple[int, int]:
    samples = tokens = 0
    for part in batch:
        if "text_atts" in part:
            samples += part["text_atts"].shape[0]
            tokens += int(part["text_atts"].sum())
        else:
            samples += next(iter(part.values())).shape[0]
    return samples, tokens


def run_training(
    model: torch.nn.Module,
    objective: Callable[[int], Objective],
    batches: Batches | Callable[[int], Batches],
    cfg: TrainConfig,
    dist_info: DistInfo,
    output_dir: str | Path,
    checkpoint_dir: str | Path,
    micro_batch: int,
    description: str = "train",
    resume_settings: dict[str, Any] | None = None,
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    """Train for ``cfg.steps`` optimizer steps and write the model folder to ``output_dir``.

    ``objective(step)`` returns the loss function for that step (so ITM can be switched off
    after N steps); it returns named loss terms, summed for the backward pass unless it
    also returns the total under ``"loss"`` (e.g. weighted). ``batches`` yields one tuple of
    batch dicts per micro-step; pass a function of the number of micro-batches already
    consumed to resume without reading them again (a plain iterator is fast-forwarded).
    ``micro_batch`` is this rank's batch per micro-step. Complete DeepSpeed checkpoints go
    to ``checkpoint_dir`` every ``cfg.save_every`` steps and at the end; training resumes
    from the newest one, as if it had never stopped, when ``resume_settings`` (the data
    layout) still match. With ``checkpoint_uri`` (a gs:// prefix), ``checkpoint_dir`` is local
    staging: each complete checkpoint is uploaded there and the newest one there is resumed from.
    On SIGTERM it saves if the last save's duration fits in ``cfg.sigterm_grace_s`` and raises
    ``TrainingStopped``. Returns the JSON-able summary also written as ``training.json``.
    """
    output_dir, ckpt_dir = Path(output_dir), Path(checkpoint_dir)
    rank, world_size = dist_info.rank, dist_info.world_size
    accumulation = cfg.gradient_accumulation
    # The ITM losses read their negatives' policy from the model they score with.
    setattr(model, "itm_negatives", check_itm_negatives(cfg))
    # Each family names its own new heads (they train at lr * lr_mult).
    engine = build_engine(model, cfg, dist_info.device, micro_batch, tuple(getattr(model, "new_head_prefixes", ())))
    float_dtype = torch.bfloat16 if engine.bfloat16_enabled() else None
    settings = {
        "description": description,
        "micro_batch": micro_batch,
        "gradient_accumulation": accumulation,
        **(resume_settings or {}),
    }

    mirror = None
    if checkpoint_uri:
        mirror = GcsMirror(
            checkpoint_uri,
            ckpt_dir,
            rank,
            dist_info.local_rank,
            world_size,
            int(os.environ.get("LOCAL_WORLD_SIZE", world_size)),
        )
        mirror.restore()
    # The data stream is positioned first, then the checkpoint restores every RNG as it was.
    found = checkpointing.complete_checkpoints(ckpt_dir)
    newest = from_main(found[-1][0] if found else None, world_size)
    if newest != (found[-1][0] if found else None):
        raise CheckpointError(
            f"rank {rank} sees other checkpoints in {ckpt_dir} than rank 0; the checkpoint "
            "dir must be one folder shared by all nodes (e.g. a PVC or a gcsfuse mount)"
        )
    start = min(newest, cfg.steps) if found else 0
    if callable(batches):
        stream = batches(start * accumulation)
    else:
        stream = batches
        for _ in range(start * accumulation):
            next(stream)
    if found:
        marker = checkpointing.load_latest(engine, ckpt_dir, rank, world_size, settings)
        if marker is None:
            raise CheckpointError(f"{ckpt_dir} changed while resuming (its checkpoints are gone); run again")
        if marker["step"] != start:
            raise CheckpointError(f"{ckpt_dir} changed while resuming (step {start}, then {marker['step']}); run again")

    progress = TrainingLog(
        description,
        cfg.steps,
        start,
        cfg.log_every,
        world_size,
        dist_info.is_main,
        output_dir / "tensorboard" if cfg.tensorboard else None,
    )
    final: list[torch.nn.Module] = []

    def save(step: int) -> str:
        def write_model(tag: str) -> None:  # rank 0, after every rank saved, before the checkpoint counts
            final[:] = [checkpointing.consolidated_model(engine, model, ckpt_dir, tag)]
            temp = getattr(final[0], "temp", None)
            if temp is not None:
                with torch.no_grad():
                    temp.clamp_(*TEMP_RANGE)
            save_model_dir(final[0], ckpt_dir / tag / "model")

        began = time.monotonic()
        saved = checkpointing.save_checkpoint(
            engine,
            ckpt_dir,
            step,
            rank,
            world_size,
            {**settings, "micro_batches_consumed": step * accumulation},
            cfg.keep_checkpoints,
            write_model,
            mirror.collect if mirror else None,
        )
        if mirror is not None:
            mirror.upload(saved)
        save_seconds[:] = [time.monotonic() - began]
        return saved

    def where(tag: str) -> str:
        if mirror and checkpoint_uri is not None:
            return f"{checkpoint_uri.rstrip('/')}/{tag}"
        return str(ckpt_dir / tag)

    save_seconds: list[float] = []
    tag = None
    with StopOnSigterm(cfg.sigterm_grace_s, dist_info.device, world_size) as sigterm:
        for step in range(start, cfg.steps):
            step_objective = objective(step)
            for _ in range(accumulation):
                batch = next(stream)
                samples, tokens = _batch_size_and_tokens(batch)
                batch = tuple(to_device(part, dist_info.device, float_dtype) for part in batch)
                clamp_temperature(engine, model)  # before the forward, as the official loop does
                terms = engine(step_objective, *batch)
                total = terms.pop("loss") if "loss" in terms else sum(terms.values())
                engine.backward(total)
                engine.step()
                progress.add({**terms, "loss": total}, samples, tokens)
            done = step + 1
            progress.step_done(done, engine.get_lr(), last=done == cfg.steps)
            due = done == cfg.steps or (cfg.save_every and done % cfg.save_every == 0)
            seconds_left = sigterm.seconds_left()
            if seconds_left is not None:
                fits = from_main(sigterm.save_fits(seconds_left, save_seconds[0] if save_seconds else None), world_size)
                if due or fits:
                    tag = save(done)
                    kept = f"saved {where(tag)}"
                else:
                    last = tag or (found[-1][1] if found else None)
                    kept = f"no time to save, {where(last)} is kept" if last else "no time to save, no checkpoint yet"
                progress.close()
                raise TrainingStopped(
                    f"stopped by SIGTERM after step {done}: {kept}; run again with the same "
                    "checkpoint location to resume"
                )
            if due:
                tag = save(done)
        if tag is None:  # nothing left to train (already complete, or zero steps): save what there is
            tag = save(start)

    summary = {
        "steps": cfg.steps,
        "resumed_from_step": start,
        "world_size": world_size,
        "checkpoint": where(tag),
        **progress.close(),
        "train_config": to_dict(cfg),
    }
    if dist_info.is_main:
        save_model_dir(final[0], output_dir, extra=summary)
        log.info("%s: model written to %s", description, output_dir)
    barrier(world_size)
    return summary
