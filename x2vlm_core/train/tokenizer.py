"""Train a CCLM tokenizer (XLM-R-style sentencepiece) on the texts of prepared shards.

No XLM-R vocabulary ships offline; a small model trained on the captions and sentence pairs
it will read is what ``model.tokenizer`` of ``cclm_tiny`` points at in tests and the local run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.errors import ConfigError
from x2vlm_core.text.xlmr import train_sentencepiece

# The datasets a CCLM pre-training reads its texts from (shapes world and default pipeline names).
DEFAULT_DATASETS = ("pretrain_multilingual", "pretrain_parallel_text")


def record_texts(meta: dict[str, Any]) -> list[str]:
    """Every text of a shard sample's meta: captions, region phrases, a sentence pair's sides."""
    texts = list(meta.get("captions") or [])
    texts += [region["caption"] for region in meta.get("regions", [])]
    texts += [
        meta[name] for name in ("source_text", "target_text", "sentence", "question") if isinstance(meta.get(name), str)
    ]
    return texts


def shard_texts(shards_root: str | Path, datasets: Sequence[str]) -> Iterator[str]:
    """The texts of every split of ``datasets`` under ``shards_root`` (a folder or gs:// prefix)."""
    available = read_index(shards_root)["datasets"]
    missing = [name for name in datasets if name not in available]
    if missing:
        raise ConfigError(
            f"{shards_root}: no dataset {missing} to train a tokenizer on; available: {sorted(available)}"
        )
    for dataset in datasets:
        for split in sorted(available[dataset]):
            for sample in iter_shard_samples(list_shards(shards_root, dataset, split)):
                yield from record_texts(sample["meta"])


def train_tokenizer(
    shards_root: str | Path, output_dir: str | Path, vocab_size: int, datasets: Sequence[str] = (), seed: int = 0
) -> dict[str, Any]:
    """Train on ``datasets`` (default: those of DEFAULT_DATASETS the shards hold); returns a summary."""
    if vocab_size < 8:
        raise ConfigError(f"--vocab-size {vocab_size} is too small for a tokenizer; use at least 8")
    if not datasets:
        present = read_index(shards_root)["datasets"]
        datasets = [name for name in DEFAULT_DATASETS if name in present]
        if not datasets:
            raise ConfigError(
                f"{shards_root} holds none of {list(DEFAULT_DATASETS)}; name the datasets whose texts "
                "to train on with --dataset"
            )
    texts = list(shard_texts(shards_root, datasets))
    folder = train_sentencepiece(texts, output_dir, vocab_size=vocab_size, seed=seed)
    from x2vlm_core.text.xlmr import build_multilingual_tokenizer

    return {
        "tokenizer": str(folder),
        "datasets": list(datasets),
        "texts": len(texts),
        "entries": len(build_multilingual_tokenizer(str(folder))),
    }
