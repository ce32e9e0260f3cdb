"""Whole-word masking for MLM: prob 0.5, at most 12 masks, 80% [MASK] / 10% random / 10% kept."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class MaskingConfig:
    mask_prob: float = 0.5
    max_masks: int = 12


def mask_whole_words(
    input_ids: torch.Tensor,
    word_ids: list[list[int | None]],
    *,
    mask_token_id: int,
    vocab_size: int,
    config: MaskingConfig,
    rng: random.Random | Sequence[random.Random],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(ids_masked, masked_pos [B, max_masks], masked_ids [B, max_masks])``.

    ``rng`` is one generator for the batch, or one per row (so a text's masks do not
    depend on which batch or rank it lands in). Padding slots of ``masked_pos`` point
    at position 0 with label -100, so they cost a gathered row but no loss.
    """
    ids_masked = input_ids.clone()
    batch = input_ids.shape[0]
    masked_pos = torch.zeros(batch, config.max_masks, dtype=torch.long)
    masked_ids = torch.full((batch, config.max_masks), -100, dtype=torch.long)
    rngs = [rng] * batch if isinstance(rng, random.Random) else list(rng)
    for row, row_rng in zip(range(batch), rngs):
        words: dict[int, list[int]] = {}
        for pos, word in enumerate(word_ids[row]):
            if word is not None:
                words.setdefault(word, []).append(pos)
        num_tokens = sum(len(p) for p in words.values())
        budget = min(config.max_masks, max(1, round(num_tokens * config.mask_prob)))
        order = list(words)
        row_rng.shuffle(order)
        chosen: list[int] = []
        for word in order:
            if len(chosen) + len(words[word]) > budget:
                continue
            chosen.extend(words[word])
        for slot, pos in enumerate(sorted(chosen)):
            masked_pos[row, slot] = pos
            masked_ids[row, slot] = input_ids[row, pos]
            roll = row_rng.random()
            if roll < 0.8:
                ids_masked[row, pos] = mask_token_id
            elif roll < 0.9:
                ids_masked[row, pos] = row_rng.randrange(vocab_size)
    return ids_masked, masked_pos, masked_ids
