"""Weakly supervised grounding (RefCOCO+ without boxes): X-VLM's ``Grounding.py``.

Training never sees a box: the model learns to match images with their referring expressions, by
the same ITC + ITM as retrieval fine-tuning (all expressions of one image are positives of it).
Evaluation locates each expression by Grad-CAM of the ITM match logit over one fusion layer's
cross-attention (``models.attention_maps``), then picks among the image's detection proposals the
one that heat covers best (``evaluation.proposals``); it is correct at IoU >= 0.5 with the referred
box. Proposals come with the shards (``proposals`` in a grounding sample, from the refcoco source's
``dets`` file); samples without them are left out of the evaluation.

Metrics per split: ``acc_iou50`` (named as the box-regression task's, so reports compare them),
``mean_iou``, ``random_proposal_acc_iou50`` (the chance of a proposal drawn at random: the
baseline) and ``proposal_recall_iou50`` (some proposal is right: the ceiling).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import torch

from x2vlm_core.data.collate import TextEncoder, positive_ids, sample_images
from x2vlm_core.errors import DataError
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.metrics import box_iou_xywh
from x2vlm_core.evaluation.proposals import best_proposal
from x2vlm_core.models.attention_maps import itm_gradcam, middle_fusion_layer
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import FusionModel
from x2vlm_core.tasks import retrieval
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import model_check

log = logging.getLogger(__name__)

DATASET = "grounding"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("val", "testA", "testB")
report_section = report.grounding_section
check_model = model_check("grounding_weakly")
# The official code fine-tunes its retrieval model here: the same ITC + ITM objective.
objective = retrieval.objective
build_model = retrieval.build_model


@dataclass
class EvalConfig:
    batch_size: int = 16  # images per forward and backward pass (each with all its referring expressions)
    # The BERT-stack layer whose cross-attention is read (the official ``block_num``); None: the middle
    # fusion layer, which is the official 9 for X-VLM base.
    layer: int | None = None
    alpha: float = 0.5  # a proposal scores its heat / area**alpha (official 0.5; 1 is the mean heat)


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    sentences = [rng.choice(s["meta"]["sentences"]) for s in samples]
    ids, atts, _ = text(sentences)
    # A RefCOCO+ image has several refs, each a record: they are one image to ITC and ITM.
    images = [s["meta"].get("image_id", s["key"]) for s in samples]
    return {
        "image": sample_images(samples, config.image_res),
        "text_ids": ids,
        "text_atts": atts,
        "idx": positive_ids(images, sentences, text.max_tokens),
    }


def with_proposals(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples that carry detection proposals; refuses a split where none does."""
    kept = [s for s in samples if s["meta"].get("proposals")]
    if not kept:
        raise DataError(
            "no grounding sample carries detection proposals; give the refcoco source its dets file "
            "(dets: refcoco+/dets.json) and re-run prepare-data"
        )
    if len(kept) < len(samples):
        log.warning(
            "grounding_weakly: %d of %d samples have no detection proposals and are left out of the evaluation",
            len(samples) - len(kept),
            len(samples),
        )
    return kept


def evaluate(model: FusionModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    """Every sentence of every ref is one query; boxes are in the stored image's pixels."""
    model.eval()
    layer = middle_fusion_layer(model) if cfg.layer is None else cfg.layer
    samples = with_proposals(samples)
    predictions: list[dict[str, Any]] = []
    hits: list[bool] = []
    reachable: list[bool] = []  # some proposal is right
    ious: list[float] = []
    chance: list[float] = []  # the fraction of right proposals: a random pick's chance
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        owner = [i for i, s in enumerate(chunk) for _ in s["meta"]["sentences"]]  # each image once, rows per sentence
        sentences = [sentence for s in chunk for sentence in s["meta"]["sentences"]]
        ids, atts, _ = text(sentences)
        with torch.no_grad():
            image_embeds, image_atts = model.get_vision_embeds(sample_images(chunk, model.config.image_res))
            text_embeds = model.get_text_embeds(ids, atts)
        heat = itm_gradcam(model, layer, image_embeds[owner], image_atts[owner], text_embeds, atts)
        for row, (i, sentence) in enumerate(zip(owner, sentences)):
            meta = chunk[i]["meta"]
            proposals = torch.tensor(meta["proposals"], dtype=torch.float32)
            truth = torch.tensor(meta["bbox"], dtype=torch.float32)
            proposal_ious = box_iou_xywh(proposals, truth.expand(len(proposals), 4))
            chosen = best_proposal(heat[row], proposals, meta["width"], meta["height"], cfg.alpha)
            pred, iou = proposals[chosen], float(proposal_ious[chosen])
            hits.append(iou >= 0.5)
            ious.append(iou)
            chance.append(float((proposal_ious >= 0.5).float().mean()))
            reachable.append(bool((proposal_ious >= 0.5).any()))
            predictions.append(
                {
                    "key": chunk[i]["key"],
                    "sentence": sentence,
                    "pred_bbox": [round(v, 2) for v in pred.tolist()],
                    "true_bbox": truth.tolist(),
                    "iou": round(iou, 4),
                    "proposals": len(proposals),
                }
            )
    count = len(hits)
    return SplitResult(
        {
            "acc_iou50": sum(hits) / count,
            "mean_iou": sum(ious) / count,
            "random_proposal_acc_iou50": sum(chance) / count,
            "proposal_recall_iou50": sum(reachable) / count,
        },
        predictions,
    )
