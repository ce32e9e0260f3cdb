"""Fine-tuning tasks. Each module exposes DATASET, TRAIN_SPLIT, EVAL_SPLITS, train_collate, objective, evaluate."""

from __future__ import annotations

from types import ModuleType

from x2vlm_core.errors import ConfigError
from x2vlm_core.tasks import grounding, retrieval

TASKS: dict[str, ModuleType] = {"retrieval": retrieval, "grounding": grounding}


def get_task(name: str) -> ModuleType:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
