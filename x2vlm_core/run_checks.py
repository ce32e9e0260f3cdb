"""Checks of a pipeline run's inputs, run first so that a run started from the UI fails within
seconds, with one readable line, instead of after an hour of data preparation or training."""

from __future__ import annotations

import json
import math
from typing import Any

from x2vlm_core import storage
from x2vlm_core.release.model_folder import CONFIG
from x2vlm_core.release.sharded_weights import WEIGHTS, WEIGHTS_INDEX
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.evaluation.multilingual import FEW_SHOT_SPLIT
from x2vlm_core.run_config import load_run_config
from x2vlm_core.tasks import TASKS, get_task


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
        raise ConfigError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")


def check_tasks(tasks: list[str]) -> None:
    if not tasks:
        raise ConfigError(f"the task list is empty; pick from: {', '.join(sorted(TASKS))}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; available tasks: {', '.join(sorted(TASKS))}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"the task list {tasks} names a task twice; each task runs once")


def check_learning_rate(learning_rate: float) -> None:
    if not isinstance(learning_rate, (int, float)) or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ConfigError(f"learning_rate must be a number > 0, got {learning_rate!r} (e.g. 1e-4)")


def check_model_folder(uri: str, what: str = "base model") -> None:
    if not uri:
        raise ConfigError(f"the {what} URI is empty; pass a model folder (gs://... or a path)")
    missing = [] if storage.exists(storage.join(uri, CONFIG)) else [CONFIG]
    # Weights: one file, or shards listed in an index (large published releases).
    if not any(storage.exists(storage.join(uri, name)) for name in (WEIGHTS, WEIGHTS_INDEX)):
        missing.append(WEIGHTS)
    if missing:
        raise DataError(f"the {what} URI {uri} does not exist or is not a model folder ({', '.join(missing)} "
                        "missing); pass the Model URI of a pretrain or finetune step, or a published release folder")


def read_shards_index(uri: str) -> dict[str, Any]:
    if not uri:
        raise ConfigError("the shards URI is empty; pass a prepare-data output folder (gs://... or a path)")
    index_uri = storage.join(uri, INDEX_FILE)
    if not storage.exists(index_uri):
        raise DataError(f"the shards URI {uri} has no {INDEX_FILE}; pass the Dataset URI of a prepare-data step")
    try:
        return json.loads(storage.read_bytes(index_uri))
    except json.JSONDecodeError as error:
        raise DataError(f"{index_uri} is not valid JSON ({error}); re-run prepare-data") from None


def check_full_run(sources: str, tasks: list[str], model_preset: str, pretrain_steps: int, finetune_steps: int,
                   batch_sizes: list[int], num_nodes: int, gpus_per_node: int, pretrain_overrides: list[str],
                   finetune_overrides: list[str]) -> None:
    """The full pipeline's parameters: sources reachable, tasks known, counts sane, overrides valid keys."""
    if not sources:
        raise ConfigError("sources is empty; pass the sources YAML's path or gs:// URI as seen from the cluster")
    if not storage.exists(sources):
        raise DataError(f"sources file {sources} does not exist; pass the sources YAML's path or gs:// URI "
                        "as seen from the cluster")
    check_tasks(tasks)
    for name, value in (("pretrain_steps", pretrain_steps), ("finetune_steps", finetune_steps),
                        ("num_nodes", num_nodes), ("gpus_per_node", gpus_per_node)):
        _positive_int(name, value)
    for value in batch_sizes:
        _positive_int("batch size", value)
    # The same parsing the training command does: unknown keys and bad values fail here, not an hour later.
    load_run_config(None, model_preset, list(pretrain_overrides))
    load_run_config(None, None, list(finetune_overrides), model_needed=False)


def check_finetune_request(task: str, base_model_uri: str, shards_uri: str, learning_rate: float,
                           warmup_steps: int, steps: int, batch_size: int, gpus_per_node: int,
                           config_overrides: list[str], dataset: str = "", few_shot: int = 0) -> list[str]:
    """The single-task run's inputs; returns the config overrides the finetune step applies.

    ``dataset`` (empty: the task's own) must hold the split the run trains on: ``train``, or
    ``few_shot`` for a few-shot run.
    """
    check_tasks([task])
    check_learning_rate(learning_rate)
    _positive_int("steps", steps)
    _positive_int("batch_size", batch_size)
    _positive_int("warmup_steps", warmup_steps, minimum=0)
    _positive_int("gpus_per_node", gpus_per_node)
    _positive_int("few_shot", few_shot, minimum=0)
    check_model_folder(base_model_uri)
    index = read_shards_index(shards_uri)
    spec = get_task(task)
    dataset = dataset or spec.DATASET
    split = FEW_SHOT_SPLIT if few_shot else spec.TRAIN_SPLIT
    splits = index.get("datasets", {}).get(dataset, {})
    if split not in splits:
        raise DataError(f"the shards at {shards_uri} have no {dataset!r} {split!r} split, which "
                        f"task {task!r} trains on (found: {sorted(splits) or 'none'}); prepare it first")
    overrides = [f"train.optim.lr={learning_rate!r}", f"train.optim.warmup_steps={int(warmup_steps)}",
                 *config_overrides]
    load_run_config(None, None, overrides, model_needed=False)
    return overrides
