"""CCLM batches: multilingual image-caption samples and parallel sentence pairs, with the XLM-R tokenizer.

The keys are those of the X²-VLM batches (``image``, ``text_ids``, ``text_atts``,
``text_ids_masked``, ``masked_pos``, ``masked_ids``), plus ``text_ids_2`` / ``text_atts_2`` for
the second view: the other side of a sentence pair, or (``second_language``) the same image's
caption in another language. As in the official CCLM recipe:

- a multilingual caption record holds ``captions`` with ``caption_languages``; one caption, in one
  language (among ``languages`` when given, e.g. English only for zero-shot transfer), per image;
- a parallel pair (``source_text``, ``target_text``) is swapped with probability 0.5, so each
  language is masked and conditioned on in turn;
- masks cover tokens, not whole words, with 2-3-token spans at probability 0.2 (skipgram);
  caption texts use 0.4 / at most 10 masks / 30 tokens, parallel texts 0.4 / 16 / 64.

All random choices come from each sample's seed (``collate.sample_rng``).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch

from x2vlm_core.data.augment import AugmentConfig, augment_image
from x2vlm_core.data.collate import sample_rng
from x2vlm_core.data.masking import MaskingConfig, mask_whole_words
from x2vlm_core.data.transforms import decode_image, image_to_tensor
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.text.wordpiece import pre_caption
from x2vlm_core.text.xlmr import build_multilingual_tokenizer

CAPTION_MASKING = MaskingConfig(mask_prob=0.4, max_masks=10)
PARALLEL_MASKING = MaskingConfig(mask_prob=0.4, max_masks=16)
PARALLEL_MAX_TOKENS = 64
SKIPGRAM_PROB = 0.2
SKIPGRAM_SIZE = 3
SWAP_PROB = 0.5


def span_word_ids(
    word_ids: Sequence[int | None],
    rng: random.Random,
    skipgram_prob: float = SKIPGRAM_PROB,
    skipgram_size: int = SKIPGRAM_SIZE,
) -> list[int | None]:
    """Group the text tokens into the units masking picks: single tokens, and at ``skipgram_prob`` a span
    of 2..``skipgram_size`` tokens. Special tokens (``None``) stay out, as in ``mask_whole_words``."""
    groups: list[int | None] = [None] * len(word_ids)
    positions = [pos for pos, word in enumerate(word_ids) if word is not None]
    group, i = 0, 0
    while i < len(positions):
        length = rng.randint(2, skipgram_size) if skipgram_size >= 2 and rng.random() < skipgram_prob else 1
        for pos in positions[i : i + length]:
            groups[pos] = group
        group, i = group + 1, i + length
    return groups


class MultilingualTextEncoder:
    """pre_caption + the XLM-R sentencepiece tokenizer, padded to the longest text of the batch.

    The same interface as ``collate.TextEncoder``; ``masked`` masks token spans (CCLM) instead of
    whole words.
    """

    def __init__(self, tokenizer: str, max_tokens: int, vocab_size: int | None = None) -> None:
        self.tokenizer = build_multilingual_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        if vocab_size is not None and len(self.tokenizer) > vocab_size:
            raise ConfigError(
                f"tokenizer {tokenizer} has {len(self.tokenizer)} entries, the text encoder's vocabulary "
                f"{vocab_size}; use the model's own tokenizer or raise text_encoder.config.vocab_size"
            )

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[list[int | None]]]:
        clean = [pre_caption(t, self.max_tokens) for t in texts]
        enc = self.tokenizer(clean, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"], [enc.word_ids(i) for i in range(len(clean))]

    def masked(
        self, texts: list[str], masking: MaskingConfig, rng: random.Random | list[random.Random]
    ) -> dict[str, torch.Tensor]:
        ids, atts, word_ids = self(texts)
        rngs = [rng] * len(texts) if isinstance(rng, random.Random) else list(rng)
        spans = [span_word_ids(row, row_rng) for row, row_rng in zip(word_ids, rngs)]
        ids_masked, masked_pos, masked_ids = mask_whole_words(
            ids,
            spans,
            mask_token_id=self.tokenizer.mask_token_id,
            vocab_size=len(self.tokenizer),
            config=masking,
            rng=rngs,
        )
        return {
            "text_ids": ids,
            "text_atts": atts,
            "text_ids_masked": ids_masked,
            "masked_pos": masked_pos,
            "masked_ids": masked_ids,
        }


def xlmr_text_encoder(config: Any, max_tokens: int | None = None) -> MultilingualTextEncoder:
    """CCLM reads with XLM-R's sentencepiece tokenizer, at ``max_tokens`` (default: the model's)."""
    return MultilingualTextEncoder(config.tokenizer, max_tokens or config.max_tokens, vocab_size=config.vocab_size)


def language_captions(sample: dict[str, Any], languages: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``(caption, language)`` pairs of a multilingual record, only those in ``languages`` when given."""
    meta = sample["meta"]
    captions, tags = meta.get("captions") or [], meta.get("caption_languages")
    if not captions or tags is None or len(tags) != len(captions):
        raise DataError(
            f"sample {sample['key']}: no language-tagged captions (captions + caption_languages); "
            "prepare it from a multilingual source (e.g. the cclm_image_text format)"
        )
    pairs = [(text, tag) for text, tag in zip(captions, tags) if not languages or tag in languages]
    if not pairs:
        raise DataError(
            f"sample {sample['key']}: no caption in {sorted(languages or [])} (it has {sorted(set(tags))}); "
            "widen the language selection or leave this dataset out"
        )
    return pairs


def pretrain_multilingual_batch(
    samples: list[dict[str, Any]],
    text: MultilingualTextEncoder,
    image_res: int,
    masking: MaskingConfig,
    augment: AugmentConfig,
    languages: Sequence[str] | None = None,
    second_language: bool = False,
) -> dict[str, torch.Tensor]:
    """One caption in one language per image (augmented image, MLM masks); with ``second_language``
    also ``text_ids_2``/``text_atts_2``: the same image's caption in another language."""
    rngs = [sample_rng(s) for s in samples]
    chosen, others = [], []
    for sample, rng in zip(samples, rngs):
        pairs = language_captions(sample, languages)
        caption, language = rng.choice(pairs)
        chosen.append(caption)
        if second_language:
            rest = [text for text, tag in pairs if tag != language]
            if not rest:
                raise DataError(
                    f"sample {sample['key']}: a second language was asked for, but it has captions in {language!r} only"
                )
            others.append(rng.choice(rest))
    images = [
        image_to_tensor(
            augment_image(decode_image(s["images"][0], s["key"]), [caption], image_res, rng, augment), image_res
        )
        for s, caption, rng in zip(samples, chosen, rngs)
    ]
    batch = {"image": torch.stack(images), **text.masked(chosen, masking, rngs)}
    if second_language:
        batch["text_ids_2"], batch["text_atts_2"], _ = text(others)
    return batch


def parallel_text_batch(
    samples: list[dict[str, Any]],
    text: MultilingualTextEncoder,
    masking: MaskingConfig = PARALLEL_MASKING,
    swap_prob: float = SWAP_PROB,
) -> dict[str, torch.Tensor]:
    """Sentence pairs as two views: view 1 with MLM masks, view 2 plain (``text_ids_2``, ``text_atts_2``)."""
    rngs = [sample_rng(s) for s in samples]
    first, second = [], []
    for sample, rng in zip(samples, rngs):
        meta = sample["meta"]
        source, target = meta.get("source_text"), meta.get("target_text")
        if not isinstance(source, str) or not isinstance(target, str) or not source.strip() or not target.strip():
            raise DataError(
                f"sample {sample['key']}: a parallel pair needs non-empty source_text and target_text; "
                "prepare it from a parallel source (e.g. the parallel_tsv format)"
            )
        pair = (target, source) if rng.random() < swap_prob else (source, target)
        first.append(pair[0])
        second.append(pair[1])
    batch = text.masked(first, masking, rngs)
    batch["text_ids_2"], batch["text_atts_2"], _ = text(second)
    return batch
