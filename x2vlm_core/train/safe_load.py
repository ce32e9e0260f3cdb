"""DeepSpeed checkpoints are read without unpickling code.

DeepSpeed's checkpoint engine and ``zero_to_fp32`` call ``torch.load(weights_only=False)``,
so a planted ``*.pt`` in a shared checkpoint folder would run code in every training pod.
Inside :func:`weights_only_loads` torch is forced (``TORCH_FORCE_WEIGHTS_ONLY_LOAD``, which
overrides an explicit ``weights_only=False``) to its restricted unpickler, which accepts only
tensors, containers and the few DeepSpeed types allowed below.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from x2vlm_core.errors import CheckpointError

_FORCE, _FORCE_NOT = "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def deepspeed_globals() -> list:
    """The non-tensor types DeepSpeed 0.19 writes into ZeRO 1/2/3 checkpoints, fp32 and bf16
    (found with ``torch.serialization.get_unsafe_globals_in_checkpoint``). Plain data classes and
    an int enum: restoring them sets attributes and calls no code of the file's choosing."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


@contextmanager
def weights_only_loads(where: str | Path) -> Iterator[None]:
    """Every ``torch.load`` in this block is weights-only; a refused file is a one-line CheckpointError."""
    saved = {name: os.environ.pop(name, None) for name in (_FORCE, _FORCE_NOT)}
    os.environ[_FORCE] = "1"
    try:
        with torch.serialization.safe_globals(deepspeed_globals()):
            yield
    except pickle.UnpicklingError as err:
        # torch's message is a page of advice to load it unsafely; keep only the line that names the type.
        lines = [line for line in str(err).splitlines() if "WeightsUnpickler error" in line]
        reason = (lines[0].strip().split(". Please")[0] if lines else type(err).__name__)[:200]
        raise CheckpointError(
            f"{where}: refused to load a checkpoint file that holds more than tensors and "
            f"DeepSpeed's own types ({reason}); it may have been tampered with, delete it "
            "or restore it from a trusted copy"
        ) from None
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
