"""Visual grounding (RefCOCO+): regress the referred box; accuracy at IoU >= 0.5."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from x2vlm_core.data.collate import TextEncoder, normalized_cxcywh, sample_images
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.metrics import box_iou_xywh, grounding_accuracy
from x2vlm_core.models import losses
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import FusionModel
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check

DATASET = "grounding"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("val", "testA", "testB")
report_section = report.grounding_section
check_model = model_check("grounding")


@dataclass
class EvalConfig:
    batch_size: int = 64  # images per forward pass (each with all its referring expressions)


def build_model(pretrained: str | Path, shards_root: str | Path) -> FusionModel:
    return build_task_model(pretrained)[0]


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    ids, atts, _ = text([rng.choice(s["meta"]["sentences"]) for s in samples])
    boxes = [normalized_cxcywh(s["meta"]["bbox"], s["meta"]["width"], s["meta"]["height"]) for s in samples]
    return {
        "image": sample_images(samples, config.image_res),
        "text_ids": ids,
        "text_atts": atts,
        "target_bbox": torch.tensor(boxes, dtype=torch.float32),
    }


def objective(model: FusionModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    image_embeds, _ = model.get_vision_embeds(batch["image"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    boxes = model.predict_bbox(image_embeds, text_embeds, batch["text_atts"])
    loss_bbox, loss_giou = losses.bbox_losses(boxes, batch["target_bbox"])
    return {"bbox": loss_bbox, "giou": loss_giou}


@torch.no_grad()
def evaluate(model: FusionModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    """Every sentence of every ref is one query; the box is scored in original pixels."""
    model.eval()
    queries: list[tuple[dict[str, Any], str]] = []
    preds: list[torch.Tensor] = []
    truths: list[torch.Tensor] = []
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        image_embeds, _ = model.get_vision_embeds(sample_images(chunk, model.config.image_res))
        owner = [i for i, s in enumerate(chunk) for _ in s["meta"]["sentences"]]  # each image once, rows per sentence
        sentences = [sentence for s in chunk for sentence in s["meta"]["sentences"]]
        ids, atts, _ = text(sentences)
        cx, cy, w, h = model.predict_bbox(image_embeds[owner], model.get_text_embeds(ids, atts), atts).unbind(-1)
        size = torch.tensor(
            [[chunk[i]["meta"]["width"], chunk[i]["meta"]["height"]] * 2 for i in owner], dtype=torch.float32
        )
        preds.append(torch.stack([cx - w / 2, cy - h / 2, w, h], dim=-1) * size)
        truths.append(torch.tensor([chunk[i]["meta"]["bbox"] for i in owner], dtype=torch.float32))
        queries.extend((chunk[i], sentence) for i, sentence in zip(owner, sentences))
    pred, truth = torch.cat(preds), torch.cat(truths)
    ious = box_iou_xywh(pred, truth)
    # The baseline a model must beat: one box (the split's mean, relative to each image) for every query.
    sizes = torch.tensor([[s["meta"]["width"], s["meta"]["height"]] * 2 for s, _ in queries], dtype=torch.float32)
    mean_box = (truth / sizes).mean(dim=0) * sizes
    predictions = [
        {
            "key": s["key"],
            "sentence": sentence,
            "pred_bbox": [round(v, 2) for v in p.tolist()],
            "true_bbox": t.tolist(),
            "iou": round(float(iou), 4),
        }
        for (s, sentence), p, t, iou in zip(queries, pred, truth, ious)
    ]
    return SplitResult(
        {
            "acc_iou50": grounding_accuracy(pred, truth),
            "mean_iou": float(ious.mean()),
            "mean_box_acc_iou50": grounding_accuracy(mean_box, truth),
        },
        predictions,
    )
