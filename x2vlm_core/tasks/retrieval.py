"""Image-text retrieval (COCO / Flickr30K): fine-tune with ITC + ITM, evaluate by ITC top-k → ITM re-rank.

Training gives every caption of an image the same id, so its other captions in the batch are
soft positives in ITC and never drawn as ITM hard negatives (official ``idx``). Evaluation ranks
all candidates by ITC similarity, then re-scores each query's ``k_test`` best with the ITM head
(everything else stays at -100), and reports TR/IR R@1/5/10 as the official itm_eval does.

A family may replace parts of this (VLMo: ``families/vlmo/tasks.py``); the recalls stay these.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from x2vlm_core.data.collate import TextEncoder, positive_ids, sample_images
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.metrics import retrieval_recall
from x2vlm_core.models import losses
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import FusionModel
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check

log = logging.getLogger(__name__)

DATASET = "retrieval"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("test",)
UNSCORED = -100.0  # what candidates outside the top k score (official)
report_section = report.retrieval_section
check_model = model_check("retrieval")


@dataclass
class EvalConfig:
    k_test: int = 256  # candidates per query re-ranked by ITM (X-VLM's COCO / Flickr30K setting)
    batch_size: int = 64  # images (or texts) encoded per forward pass
    itm_batch_size: int = 256  # (query, candidate) pairs fused per ITM forward pass


def build_model(pretrained: str | Path, shards_root: str | Path) -> FusionModel:
    return build_task_model(pretrained)[0]


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    captions = [rng.choice(s["meta"]["captions"]) for s in samples]
    ids, atts, _ = text(captions)
    return {
        "image": sample_images(samples, config.image_res),
        "text_ids": ids,
        "text_atts": atts,
        "idx": positive_ids([s["key"] for s in samples], captions, text.max_tokens),
    }


def objective(model: FusionModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    image_embeds, image_atts = model.get_vision_embeds(batch["image"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    return {
        "itc": losses.contrastive_loss(image_feat, text_feat, model.temp, idx=batch["idx"]),
        "itm": losses.matching_loss(
            model, image_embeds, image_atts, image_feat, text_embeds, batch["text_atts"], text_feat, idx=batch["idx"]
        ),
    }


def evaluate(model: FusionModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    return evaluate_retrieval(model, samples, text, cfg, lambda chunk: sample_images(chunk, model.config.image_res))


def rerank_top_k(
    sims: torch.Tensor, k: int, pair_scores: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch_size: int
) -> torch.Tensor:
    """Scores ``[Q, C]``: ``pair_scores(queries, candidates)`` for each query's ``k`` most similar candidates.

    The (query, candidate) pairs of all queries are scored in fixed-size batches, however small k is.
    """
    k = min(k, sims.shape[1])
    top = sims.topk(k, dim=1).indices
    queries = torch.arange(sims.shape[0]).repeat_interleave(k)
    candidates = top.flatten()
    values = torch.cat(
        [
            pair_scores(queries[i : i + batch_size], candidates[i : i + batch_size])
            for i in range(0, len(queries), batch_size)
        ]
    )
    scores = torch.full_like(sims, UNSCORED)
    scores[queries, candidates] = values.to(scores.dtype)
    return scores


@torch.no_grad()
def evaluate_retrieval(
    model: FusionModel,
    samples: list[dict[str, Any]],
    text: TextEncoder,
    cfg: EvalConfig,
    visual: Callable[[list[dict[str, Any]]], torch.Tensor],
) -> SplitResult:
    """``visual(samples)`` gives the image (or video) batch of some samples."""
    model.eval()
    samples, texts, txt2img, img2txt = caption_index(samples)
    step = cfg.batch_size
    image_embeds = torch.cat(
        [model.get_vision_embeds(visual(samples[i : i + step]))[0] for i in range(0, len(samples), step)]
    )
    text_ids, text_atts, _ = text(texts)
    text_embeds = torch.cat(
        [model.get_text_embeds(text_ids[i : i + step], text_atts[i : i + step]) for i in range(0, len(texts), step)]
    )
    image_feat = torch.cat([model.get_image_feat(image_embeds[i : i + step]) for i in range(0, len(samples), step)])
    text_feat = torch.cat([model.get_text_feat(text_embeds[i : i + step]) for i in range(0, len(texts), step)])
    sims = image_feat @ text_feat.t()
    image_atts = torch.ones(image_embeds.shape[:2], dtype=torch.long)

    def itm(images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        # Texts are padded to the longest of all; a batch needs only its own longest.
        length = int(text_atts[captions].sum(dim=1).max())
        return model.itm_logits(
            image_embeds[images], image_atts[images], text_embeds[captions, :length], text_atts[captions, :length]
        )[:, 1]

    scores_i2t = rerank_top_k(sims, cfg.k_test, itm, cfg.itm_batch_size)
    scores_t2i = rerank_top_k(sims.t(), cfg.k_test, lambda t, i: itm(i, t), cfg.itm_batch_size)
    return retrieval_result(scores_i2t, scores_t2i, samples, texts, txt2img, img2txt)


def caption_index(samples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str], list[int], list[list[int]]]:
    """The captioned samples, all their captions, each caption's image and each image's captions."""
    captioned = [s for s in samples if s["meta"].get("captions")]
    if len(captioned) < len(samples):
        log.warning(
            "retrieval: %d of %d samples have no caption and are left out of the evaluation",
            len(samples) - len(captioned),
            len(samples),
        )
    texts: list[str] = []
    txt2img: list[int] = []
    img2txt: list[list[int]] = []
    for i, sample in enumerate(captioned):
        captions = sample["meta"]["captions"]
        img2txt.append(list(range(len(texts), len(texts) + len(captions))))
        texts.extend(captions)
        txt2img.extend([i] * len(captions))
    return captioned, texts, txt2img, img2txt


def retrieval_result(
    scores_i2t: torch.Tensor,
    scores_t2i: torch.Tensor,
    samples: list[dict[str, Any]],
    texts: list[str],
    txt2img: list[int],
    img2txt: list[list[int]],
) -> SplitResult:
    """Recall@1/5/10 both ways, and each query's top 5 with its truth."""
    metrics = retrieval_recall(scores_i2t.numpy(), scores_t2i.numpy(), txt2img, img2txt)

    top_texts = scores_i2t.topk(min(5, len(texts)), dim=1).indices.tolist()
    top_images = scores_t2i.topk(min(5, len(samples)), dim=1).indices.tolist()
    predictions = [
        {
            "direction": "image_to_text",
            "query": s["key"],
            "top5": [texts[t] for t in top_texts[i]],
            "truth": s["meta"]["captions"],
        }
        for i, s in enumerate(samples)
    ]
    predictions += [
        {
            "direction": "text_to_image",
            "query": texts[t],
            "top5": [samples[i]["key"] for i in top_images[t]],
            "truth": [samples[txt2img[t]]["key"]],
        }
        for t in range(len(texts))
    ]
    return SplitResult(metrics, predictions)
