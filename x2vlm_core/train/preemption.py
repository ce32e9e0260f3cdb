"""SIGTERM during training: save if there is time, then stop with status 143.

A GKE spot node gets about 30 s between SIGTERM and SIGKILL (torchrun passes the signal on to
every rank). The handler only takes note; the loop asks after each optimizer step, all ranks
agree on it, and a checkpoint is written only when the last save took less than the time left.
A save cut short by the SIGKILL costs nothing: it has no marker, and the one before stays.
"""

from __future__ import annotations

import math
import signal
import time
from typing import Any

import torch

from x2vlm_core.errors import X2VLMError

# Measured again from the last save of this attempt; a save overruns its last duration by this much.
SAVE_MARGIN = 1.25


class TrainingStopped(X2VLMError):
    """SIGTERM stopped the run; the exit status is the shell's for it (128 + 15)."""

    exit_code = 143


class StopOnSigterm:
    """Within ``with``: SIGTERM is noted, not fatal; ``seconds_left`` tells every rank how long remains."""

    def __init__(self, grace_s: float, device: torch.device, world_size: int) -> None:
        self.grace_s, self.device, self.world_size = grace_s, device, world_size
        self.received: float | None = None
        self._previous: Any = None  # the handler signal.signal returns, to restore

    def __enter__(self) -> "StopOnSigterm":
        self._previous = signal.signal(signal.SIGTERM, self._note)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)

    def _note(self, signum, frame) -> None:
        if self.received is None:
            self.received = time.monotonic()

    def seconds_left(self) -> float | None:
        """None while no rank got SIGTERM, else the least time any rank has left (the same on every rank)."""
        left = math.inf if self.received is None else self.grace_s - (time.monotonic() - self.received)
        if self.world_size > 1:  # ranks get the signal at different moments, or only one node does
            box = torch.tensor([left], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(box, op=torch.distributed.ReduceOp.MIN)
            left = box.item()
        return None if math.isinf(left) else left

    @staticmethod
    def save_fits(seconds_left: float, last_save_s: float | None) -> bool:
        # Without a save yet in this attempt there is no estimate; trying costs nothing if it is cut short.
        return seconds_left > 0 and (last_save_s is None or last_save_s * SAVE_MARGIN < seconds_left)
