"""Image captioning (COCO Karpathy split): UniLM-style MLM fine-tuning and beam search with a prompt.

Training text is ``[CLS] a picture of <caption> [SEP]``; caption tokens (and [SEP], so the model
learns to stop) are masked as the official recipe does (prob 0.6, at most 18, whole words, 2-3 token
spans 20% of the time, the prompt never) and predicted with label smoothing 0.1, laid out FG-free
(``models/mlm_captioner.py``). Evaluation decodes after the prompt with beam search (3 beams,
5-50 tokens, no repeated trigram) and scores BLEU-4, METEOR, ROUGE-L and CIDEr against the
reference captions with pycocoevalcap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from x2vlm_core.data.collate import TextEncoder, sample_images
from x2vlm_core.errors import ConfigError
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.caption_metrics import caption_scores
from x2vlm_core.families.x2vlm.model import XVLM
from x2vlm_core.models.beam_search import beam_search
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.mlm_captioner import masked_token_logits, next_token_log_probs
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check
from x2vlm_core.text.wordpiece import pre_caption

DATASET = "retrieval"  # the Karpathy split: the same images and captions as retrieval
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("test",)
PROMPT = "a picture of "
MASK_PROB = 0.6
MAX_MASKS = 18
SPAN_PROB = 0.2  # chance that a masked span is 2-3 tokens instead of 1
MAX_SPAN = 3
LABEL_SMOOTHING = 0.1
report_section = report.captioning_section
check_model = model_check("captioning")


@dataclass
class EvalConfig:
    num_beams: int = 3
    min_length: int = 5
    max_length: int = 50
    batch_size: int = 16  # images per beam search
    meteor: bool = True  # METEOR starts a Java process that loads its paraphrase tables (10+ s)
    spice: bool = False  # SPICE downloads Stanford CoreNLP models on first use


def build_model(pretrained: str | Path, shards_root: str | Path) -> XVLM:
    return build_task_model(pretrained)[0]


@lru_cache(maxsize=4)
def _prompt_tokens(text: TextEncoder) -> tuple[str, ...]:
    return tuple(text.tokenizer.tokenize(PROMPT))


def masked_positions(tokens: list[str], first: int, rng: random.Random) -> list[int]:
    """Positions from ``first`` on to predict: whole words, sometimes short spans."""
    budget = min(MAX_MASKS, max(1, round((len(tokens) - first + 1) * MASK_PROB)))
    candidates = list(range(first, len(tokens)))
    rng.shuffle(candidates)
    chosen: set[int] = set()
    for position in candidates:
        if len(chosen) >= budget:
            break
        if position in chosen:
            continue
        start, end = position, position + (rng.randint(2, MAX_SPAN) if rng.random() < SPAN_PROB else 1)
        while start > first and tokens[start].startswith("##"):
            start -= 1
        while end < len(tokens) and tokens[end].startswith("##"):
            end += 1
        chosen.update(range(start, min(end, len(tokens))))
    picked = sorted(chosen)
    if len(picked) > budget:
        picked = sorted(rng.sample(picked, budget))
    return picked


def caption_layout(
    text: TextEncoder, caption: str, max_tokens: int, rng: random.Random
) -> tuple[list[int], list[int], list[int], list[int]]:
    """FG-free layout of one caption: ids, position ids, slots of the inserted [MASK]s, and their targets."""
    tokenizer = text.tokenizer
    prompt = list(_prompt_tokens(text))
    tokens = (
        [tokenizer.cls_token] + prompt + tokenizer.tokenize(pre_caption(caption, max_tokens)) + [tokenizer.sep_token]
    )[:max_tokens]
    ids = cast(list[int], tokenizer.convert_tokens_to_ids(tokens))  # a list of tokens gives a list of ids
    masked = set(masked_positions(tokens, 1 + len(prompt), rng))
    layout: list[int] = []
    positions: list[int] = []
    slots: list[int] = []
    targets: list[int] = []
    for position, token_id in enumerate(ids):
        if position in masked:
            slots.append(len(layout))
            targets.append(token_id)
            layout.append(tokenizer.mask_token_id)
            positions.append(position)
        layout.append(token_id)
        positions.append(position)
    return layout, positions, slots, targets


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    layouts = [caption_layout(text, rng.choice(s["meta"]["captions"]), config.max_tokens, rng) for s in samples]
    length = max(len(ids) for ids, *_ in layouts)
    masks = max(len(slots) for *_, slots, _ in layouts)
    ids = torch.zeros(len(samples), length, dtype=torch.long)
    positions = torch.zeros(len(samples), length, dtype=torch.long)
    keep = torch.ones(length, length, dtype=torch.bool).tril().repeat(len(samples), 1, 1)
    masked_pos = torch.zeros(len(samples), masks, dtype=torch.long)
    masked_ids = torch.full((len(samples), masks), -100, dtype=torch.long)
    for row, (layout, position_ids, slots, targets) in enumerate(layouts):
        ids[row, : len(layout)] = torch.tensor(layout)
        positions[row, : len(layout)] = torch.tensor(position_ids)
        keep[row, :, slots] = False  # nothing reads an inserted [MASK] ...
        keep[row, slots, slots] = True  # ... but itself
        masked_pos[row, : len(slots)] = torch.tensor(slots, dtype=torch.long)
        masked_ids[row, : len(targets)] = torch.tensor(targets, dtype=torch.long)
    return {
        "image": sample_images(samples, config.image_res),
        "text_ids": ids,
        "position_ids": positions,
        "keep": keep,
        "masked_pos": masked_pos,
        "masked_ids": masked_ids,
    }


def objective(model: XVLM, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    image_embeds, image_atts = model.get_vision_embeds(batch["image"])
    logits = masked_token_logits(
        model, batch["text_ids"], batch["position_ids"], batch["keep"], batch["masked_pos"], image_embeds, image_atts
    )
    loss = F.cross_entropy(
        logits.flatten(0, 1), batch["masked_ids"].flatten(), ignore_index=-100, label_smoothing=LABEL_SMOOTHING
    )
    return {"caption_mlm": loss}


@torch.no_grad()
def generate(model: XVLM, images: torch.Tensor, text: TextEncoder, cfg: EvalConfig) -> list[str]:
    tokenizer = text.tokenizer
    prompt = cast(list[int], tokenizer.convert_tokens_to_ids([tokenizer.cls_token, *_prompt_tokens(text)]))
    longest = len(prompt) + cfg.max_length + 1
    if longest > model.config.text.max_position_embeddings:
        raise ConfigError(
            f"captioning max_length {cfg.max_length} needs {longest} positions, the model has "
            f"{model.config.text.max_position_embeddings}; lower max_length"
        )
    image_embeds, image_atts = model.get_vision_embeds(images)
    sequences = beam_search(
        lambda owner, tokens: next_token_log_probs(
            model, tokens, image_embeds[owner], image_atts[owner], tokenizer.mask_token_id
        ),
        len(images),
        prompt,
        end_id=tokenizer.sep_token_id,
        num_beams=cfg.num_beams,
        min_length=cfg.min_length,
        max_length=cfg.max_length,
    )
    return [
        cast(str, tokenizer.decode(ids, skip_special_tokens=True)).strip() for ids in sequences
    ]  # one sequence: one str


def evaluate(model: XVLM, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    model.eval()
    samples = [s for s in samples if s["meta"].get("captions")]
    captions: list[str] = []
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        captions.extend(generate(model, sample_images(chunk, model.config.image_res), text, cfg))
    references = {s["key"]: list(s["meta"]["captions"]) for s in samples}
    scores, unavailable = caption_scores(
        references, {s["key"]: c for s, c in zip(samples, captions)}, meteor=cfg.meteor, spice=cfg.spice
    )
    predictions = [
        {"key": s["key"], "caption": c, "references": references[s["key"]]} for s, c in zip(samples, captions)
    ]
    return SplitResult(scores, predictions, unavailable)
