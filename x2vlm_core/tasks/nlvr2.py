"""NLVR2: is the statement true of the image pair? Accuracy on dev and test-P (``test1``).

As the official model: both images go through the vision encoder, the statement is fused with
each image separately, and the two fused [CLS] vectors, concatenated, feed ``cls_head`` (MLP → 2).
A family with its own pair head passes its logits to ``pair_objective`` / ``evaluate_pairs``
(VLMo: ``families/vlmo/tasks.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.transforms import decode_image, image_to_tensor
from x2vlm_core.errors import DataError
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.metrics import accuracy, majority_accuracy
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import ClassifierModel
from x2vlm_core.models.task_heads import TaskHeads
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check

DATASET = "nlvr2"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("dev", "test1", "test")  # NLVR2 dev / test-P, MaRVL test
LABELS = ["False", "True"]
report_section = report.nlvr2_section
check_model = model_check("nlvr2", "nlvr2")


@dataclass
class EvalConfig:
    batch_size: int = 64  # statements (image pairs) per forward pass


def build_model(pretrained: str | Path, shards_root: str | Path) -> ClassifierModel:
    return build_task_model(pretrained, TaskHeads(task="nlvr2", cls_inputs=2, labels=LABELS))[0]


def pair_images(samples: list[dict[str, Any]], image_res: int) -> tuple[torch.Tensor, torch.Tensor]:
    for sample in samples:
        if len(sample["images"]) != 2:
            raise DataError(f"NLVR2 sample {sample['key']} has {len(sample['images'])} images, expected a pair")
    left, right = (
        [image_to_tensor(decode_image(s["images"][side], s["key"]), image_res) for s in samples] for side in (0, 1)
    )
    return torch.stack(left), torch.stack(right)


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    left, right = pair_images(samples, config.image_res)
    ids, atts, _ = text([s["meta"]["sentence"] for s in samples])
    return {
        "left": left,
        "right": right,
        "text_ids": ids,
        "text_atts": atts,
        "label": torch.tensor([int(s["meta"]["label"]) for s in samples], dtype=torch.long),
    }


# (model, left images, right images, statement ids, statement mask) -> [B, 2] logits.
PairLogits = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def pair_logits(
    model: ClassifierModel, left: torch.Tensor, right: torch.Tensor, text_ids: torch.Tensor, text_atts: torch.Tensor
) -> torch.Tensor:
    image_embeds, image_atts = model.get_vision_embeds(torch.cat([left, right]))
    text_embeds = model.get_text_embeds(text_ids, text_atts)
    fused = [
        model.get_cross_embeds(embeds, atts, text_embeds, text_atts)[:, 0]
        for embeds, atts in zip(image_embeds.chunk(2), image_atts.chunk(2))
    ]
    return model.cls_head(torch.cat(fused, dim=-1))


def pair_objective(logits_of: PairLogits, model: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    logits = logits_of(model, batch["left"], batch["right"], batch["text_ids"], batch["text_atts"])
    return {"nlvr2": F.cross_entropy(logits, batch["label"])}


def objective(model: ClassifierModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return pair_objective(pair_logits, model, batch)


def evaluate(model: ClassifierModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    return evaluate_pairs(pair_logits, model, samples, text, cfg)


@torch.no_grad()
def evaluate_pairs(
    logits_of: PairLogits, model: Any, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig
) -> SplitResult:
    model.eval()
    predicted: list[bool] = []
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        left, right = pair_images(chunk, model.config.image_res)
        ids, atts, _ = text([s["meta"]["sentence"] for s in chunk])
        predicted.extend(bool(v) for v in logits_of(model, left, right, ids, atts).argmax(dim=-1).tolist())
    truth = [bool(s["meta"]["label"]) for s in samples]
    predictions = [
        {"key": s["key"], "sentence": s["meta"]["sentence"], "predicted": p, "label": t}
        for s, p, t in zip(samples, predicted, truth)
    ]
    return SplitResult(
        {"accuracy": accuracy(predicted, truth), "majority_accuracy": majority_accuracy(truth)}, predictions
    )
