"""Fine-tuning one task from a pre-trained model folder, with the shared training loop.

Zero-shot cross-lingual transfer (IGLUE, CCLM) is the default: fine-tune on the dataset's
``train`` split (English in IGLUE), then evaluate every language. Few-shot continues from such
an English task model with ``shots`` examples per target language, drawn with the run's seed
(``multilingual.few_shot_sample``) from the dataset's ``few_shot`` split: the target-language
training data (IGLUE's few-shot files, given ``split: few_shot`` in the sources list), so the
evaluation splits stay untouched.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from x2vlm_core.data.shards import iter_shard_samples, list_shards
from x2vlm_core.data.streaming import dataset_shards, shard_loader
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.evaluation.multilingual import (
    FEW_SHOT_SPLIT,
    few_shot_sample,
    group_by_language,
    record_language,
    target_languages,
)
from x2vlm_core.families import family_of, text_encoder_for
from x2vlm_core.release.model_folder import load_model_dir, read_model_config
from x2vlm_core.tasks import get_task
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import init_distributed
from x2vlm_core.train.engine import micro_batch_size
from x2vlm_core.train.loop import run_training
from x2vlm_core.train.seed import seed_everything

log = logging.getLogger(__name__)


def run_finetune(
    task_name: str,
    pretrained: str | Path,
    cfg: TrainConfig,
    shards_root: str | Path,
    output_dir: str | Path,
    checkpoint_dir: str | Path,
    dataset: str | None = None,
    few_shot: int = 0,
    languages: Sequence[str] | None = None,
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    """Train ``task_name`` for ``cfg.steps`` steps; the task model folder (with its heads) goes to ``output_dir``.

    ``dataset`` replaces the task's own (e.g. ``xflickrco`` for retrieval, ``xgqa`` for vqa).
    ``few_shot`` > 0: ``pretrained`` is a task model fine-tuned in English, trained on that many
    examples of each of ``languages`` (default: every non-English language of the few-shot split).
    ``checkpoint_uri``: a gs:// prefix checkpoints are uploaded to and resumed from (see ``run_training``).
    """
    # The family's implementation of the task; one it cannot do is refused here, before any work.
    get_task(task_name)  # an unknown task is named before the model is read
    family = family_of(read_model_config(pretrained))
    task = family.task(task_name)
    dataset = dataset or task.DATASET
    if few_shot < 0:
        raise ConfigError(f"few_shot={few_shot}: give the number of examples per language (0: no few-shot)")
    if languages and not few_shot:
        raise ConfigError("languages pick the few-shot languages; give --few-shot N with them")
    info = init_distributed()
    micro_batch = micro_batch_size(cfg.batch_size, cfg, info.world_size)  # train.batch_size is global
    if few_shot:
        shots = few_shot_pool(shards_root, dataset, few_shot, cfg.seed, languages)
        if micro_batch > len(shots):
            raise ConfigError(
                f"the batch ({micro_batch} per rank) is larger than the {len(shots)} few-shot examples; "
                f"set train.batch_size to at most {len(shots)} per rank"
            )
        try:
            task.check_model(load_model_dir(pretrained), pretrained)
        except ConfigError as exc:
            raise ConfigError(f"few-shot continues from a model fine-tuned on {task_name} in English: {exc}") from None
    else:
        shards = dataset_shards(str(shards_root), dataset, task.TRAIN_SPLIT)
    seed_everything(cfg.seed + info.rank)
    model = build_task_model_for(task, pretrained, shards_root, dataset)
    # Trained at lr x lr_mult, as official init_params. (setattr: nn.Module's __setattr__ stub takes Tensor | Module only.)
    setattr(model, "new_head_prefixes", family.finetune_head_prefixes(model))
    text = text_encoder_for(model.config)  # the model's own tokenizer: WordPiece, or CCLM's sentencepiece
    options = task.collate_options(model) if hasattr(task, "collate_options") else {}
    collate = functools.partial(
        task.train_collate, text=text, config=model.config, rng=random.Random(cfg.seed * 1000 + info.rank), **options
    )
    if few_shot:
        batches = ((collate(chunk),) for chunk in few_shot_batches(shots, micro_batch, f"{cfg.seed}:{info.rank}"))
    else:
        loader = shard_loader(
            shards,
            micro_batch,
            collate,
            rank=info.rank,
            world_size=info.world_size,
            seed=cfg.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            num_workers=cfg.num_workers,
        )
        batches = ((batch,) for batch in loader)
    description = f"finetune-{task_name}" + (f"-{few_shot}-shot" if few_shot else "")
    return run_training(
        model,
        lambda step: task.objective,
        batches,
        cfg,
        info,
        output_dir,
        checkpoint_dir,
        micro_batch=micro_batch,
        description=description,
        checkpoint_uri=checkpoint_uri,
    )


def build_task_model_for(task: Any, pretrained: str | Path, shards_root: str | Path, dataset: str) -> nn.Module:
    """``task.build_model``, told the dataset when it reads one to build the model (VQA: the answer list)."""
    if "dataset" in inspect.signature(task.build_model).parameters:
        return task.build_model(pretrained, shards_root, dataset=dataset)
    return task.build_model(pretrained, shards_root)


def few_shot_pool(
    shards_root: str | Path, dataset: str, shots: int, seed: int, languages: Sequence[str] | None
) -> list[dict[str, Any]]:
    """``shots`` samples per language of ``dataset``'s few-shot split, the same ones for a seed."""
    samples = list(iter_shard_samples(list_shards(str(shards_root), dataset, FEW_SHOT_SPLIT)))
    language_of = lambda sample: record_language(sample["meta"])  # noqa: E731
    wanted = list(languages) if languages else target_languages(group_by_language(samples, language_of))
    if not wanted:
        raise DataError(
            f"the {FEW_SHOT_SPLIT!r} split of {dataset!r} has no language besides English; "
            "few-shot needs target-language examples there"
        )
    chosen = few_shot_sample(samples, shots, seed, wanted, language_of=language_of, key_of=lambda s: s["key"])
    log.info("few-shot: %d examples of %s from %s/%s", shots, ", ".join(wanted), dataset, FEW_SHOT_SPLIT)
    return chosen


def few_shot_batches(samples: list[dict[str, Any]], batch_size: int, seed: str) -> Iterator[list[dict[str, Any]]]:
    """Endless batches over the few-shot samples, reshuffled every pass (the last partial batch is dropped)."""
    if not 0 < batch_size <= len(samples):
        raise ConfigError(f"cannot batch {len(samples)} few-shot examples {batch_size} at a time")
    for epoch in range(1 << 62):
        order = list(samples)
        random.Random(f"{seed}:{epoch}").shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
