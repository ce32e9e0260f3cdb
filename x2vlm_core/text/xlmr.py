"""The XLM-R sentencepiece tokenizer of CCLM models: build, save with a model folder, train a small one.

A tokenizer folder holds XLM-R's ``sentencepiece.bpe.model`` (as downloaded with the model), and
once saved by us also transformers' ``tokenizer.json`` and ``tokenizer_config.json``. The
transformers XLM-R tokenizer adds the fairseq layout on top of the sentencepiece pieces:
``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, every piece shifted by one, ``<mask>`` last.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from x2vlm_core.errors import ConfigError

SENTENCEPIECE_MODEL = "sentencepiece.bpe.model"
TOKENIZER_JSON = "tokenizer.json"


def multilingual_tokenizer_dir(spec: str) -> Path:
    if not spec:
        raise ConfigError(
            "model.tokenizer is empty: set it to a folder holding XLM-R's sentencepiece.bpe.model "
            "(train_sentencepiece makes a small one from text)"
        )
    path = Path(spec)
    if not any((path / name).is_file() for name in (SENTENCEPIECE_MODEL, TOKENIZER_JSON)):
        raise ConfigError(
            f"tokenizer folder {path} has neither {SENTENCEPIECE_MODEL} nor {TOKENIZER_JSON}; "
            "point model.tokenizer at an XLM-R tokenizer folder"
        )
    return path


@lru_cache(maxsize=8)
def build_multilingual_tokenizer(spec: str):
    """transformers' XLM-R tokenizer from a tokenizer folder (no hub access)."""
    from transformers import XLMRobertaTokenizer

    return XLMRobertaTokenizer.from_pretrained(str(multilingual_tokenizer_dir(spec)), local_files_only=True)


def save_multilingual_tokenizer(spec: str, out_dir: str | Path) -> Path:
    """Copy a tokenizer into a model folder's ``tokenizer/``: the sentencepiece model and transformers' files."""
    source, out = multilingual_tokenizer_dir(spec), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (source / SENTENCEPIECE_MODEL).is_file() and source.resolve() != out.resolve():
        shutil.copyfile(source / SENTENCEPIECE_MODEL, out / SENTENCEPIECE_MODEL)
    build_multilingual_tokenizer(spec).save_pretrained(str(out))
    return out


def train_sentencepiece(texts: Iterable[str], out_dir: str | Path, vocab_size: int, seed: int = 0) -> Path:
    """Train a unigram sentencepiece model with XLM-R's special pieces; returns the tokenizer folder.

    ``vocab_size`` is an upper bound: a small corpus gets as many pieces as it supports.
    The tokenizer then has ``pieces + 2`` entries (``<pad>`` and ``<mask>`` are added).
    """
    try:
        import sentencepiece
    except ImportError:
        raise ConfigError("training a tokenizer needs the sentencepiece package (pip install sentencepiece)") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [line.strip() for line in texts if line.strip()]
    if not lines:
        raise ConfigError("no text to train a tokenizer on; give at least one non-empty line")
    sentencepiece.set_random_generator_seed(seed)  # the trainer samples and shuffles sentences
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(out / SENTENCEPIECE_MODEL.removesuffix(".model")),
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        # XLM-R's sentencepiece model: <unk> 0, <s> 1, </s> 2, no pad piece.
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return out
