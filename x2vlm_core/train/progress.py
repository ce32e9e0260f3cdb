"""What a run reports while it trains: JSON log lines, TensorBoard scalars, a tqdm bar (rank 0).

Every ``log_every`` steps: each loss term and the total (averaged over ranks and
accumulation steps), the learning rates, samples/s and text tokens/s over the whole world.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from x2vlm_core.errors import X2VLMError

log = logging.getLogger(__name__)


def _sum_across_ranks(values: dict[str, float], world_size: int) -> dict[str, float]:
    if world_size == 1:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64)
    dist.all_reduce(tensor)
    return dict(zip(names, tensor.tolist()))


class TrainingLog:
    def __init__(
        self,
        description: str,
        total_steps: int,
        start_step: int,
        log_every: int,
        world_size: int,
        is_main: bool,
        tensorboard_dir: str | Path | None,
    ) -> None:
        self.description, self.log_every, self.world_size, self.is_main = description, log_every, world_size, is_main
        self.history: list[dict[str, float]] = []
        self.bar = tqdm(total=total_steps, initial=start_step, desc=description, disable=not is_main, mininterval=2)
        self.writer = None
        if is_main and tensorboard_dir is not None:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir))
        self._reset()
        self.started = time.time()

    def _reset(self) -> None:
        self.losses: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # micro-steps that had the term (ITM may stop mid-window)
        self.samples = 0
        self.tokens = 0
        self.window_start = time.time()

    def add(self, losses: dict[str, torch.Tensor], samples: int, tokens: int) -> None:
        """One micro-step of this rank: its loss terms (kept as tensors until a logging step), its sizes."""
        for name, value in losses.items():
            self.losses[name] = self.losses.get(name, 0.0) + value.detach().float()
            self.counts[name] = self.counts.get(name, 0) + 1
        self.samples += samples
        self.tokens += tokens

    def step_done(self, step: int, lrs: list[float], last: bool) -> dict[str, float] | None:
        """After optimizer step ``step`` (1-based): log if due; returns the logged record."""
        self.bar.update(1)
        if step % self.log_every and not last:
            return None
        # float() syncs with the device, so only on logging steps.
        sums = {name: float(value) for name, value in self.losses.items()}
        sums.update(
            {f"count/{name}": count for name, count in self.counts.items()}, samples=self.samples, tokens=self.tokens
        )
        sums = _sum_across_ranks(sums, self.world_size)
        seconds = max(time.time() - self.window_start, 1e-9)
        record = {name: sums[name] / sums[f"count/{name}"] for name in self.losses}
        if not math.isfinite(record["loss"]):
            raise X2VLMError(
                f"{self.description}: loss became {record['loss']} at step {step}; "
                "lower train.optim.lr, or set train.stop_itm_after if ITM hard negatives diverge"
            )
        record.update(
            step=step,
            lr=lrs[0],
            lr_new_heads=max(lrs),
            samples_per_s=sums["samples"] / seconds,
            tokens_per_s=sums["tokens"] / seconds,
        )
        self.history.append(record)
        if self.is_main:
            log.info(json.dumps({"event": self.description, **{k: round(v, 5) for k, v in record.items()}}))
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", refresh=False)
            if self.writer is not None:
                for name, value in record.items():
                    if name != "step":
                        self.writer.add_scalar(f"{self.description}/{name}", value, step)
                self.writer.flush()
        self._reset()
        return record

    def close(self) -> dict[str, Any]:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        return {
            "seconds": round(time.time() - self.started, 2),
            "history": self.history,
            "final": self.history[-1] if self.history else {},
        }
