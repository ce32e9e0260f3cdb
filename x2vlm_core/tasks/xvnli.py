"""XVNLI (IGLUE) / SNLI-VE: does the image entail, contradict, or say nothing about the hypothesis?

As the official CCLM / X²-VLM visual entailment model: the hypothesis is fused with the image
(text encoder, then the cross / fusion layers) and ``cls_head`` (MLP → 3) classifies the fused
[CLS] vector, trained with cross-entropy; the metric is accuracy. Records come from the XVNLI
reader (``data/readers/xvnli.py``): ``sentence`` (the hypothesis), ``label``, ``language``. The
premise caption is not read, as in the official model: the image stands in for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from x2vlm_core.data.collate import TextEncoder, sample_images
from x2vlm_core.data.readers.xvnli import LABELS
from x2vlm_core.errors import DataError
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.metrics import accuracy, majority_accuracy
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import ClassifierModel
from x2vlm_core.models.task_heads import TaskHeads
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check

DATASET = "xvnli"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("dev", "test")
report_section = report.entailment_section
check_model = model_check("xvnli", "xvnli")


@dataclass
class EvalConfig:
    batch_size: int = 64  # hypotheses (images) per forward pass


def build_model(pretrained: str | Path, shards_root: str | Path) -> ClassifierModel:
    heads = TaskHeads(task="xvnli", cls_inputs=1, labels=list(LABELS))
    return build_task_model(pretrained, heads)[0]


def label_index(sample: dict[str, Any]) -> int:
    label = sample["meta"].get("label")
    if label not in LABELS:
        raise DataError(
            f"visual entailment sample {sample['key']} has label {label!r}, not one of {list(LABELS)}; "
            "prepare it with the xvnli reader, which rejects lines without a gold label"
        )
    return LABELS.index(label)


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    ids, atts, _ = text([s["meta"]["sentence"] for s in samples])
    return {
        "image": sample_images(samples, config.image_res),
        "text_ids": ids,
        "text_atts": atts,
        "label": torch.tensor([label_index(s) for s in samples], dtype=torch.long),
    }


def entailment_logits(
    model: ClassifierModel, image: torch.Tensor, text_ids: torch.Tensor, text_atts: torch.Tensor
) -> torch.Tensor:
    image_embeds, image_atts = model.get_vision_embeds(image)
    fused = model.get_cross_embeds(image_embeds, image_atts, model.get_text_embeds(text_ids, text_atts), text_atts)
    return model.cls_head(fused[:, 0])


def objective(model: ClassifierModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    logits = entailment_logits(model, batch["image"], batch["text_ids"], batch["text_atts"])
    return {"xvnli": F.cross_entropy(logits, batch["label"])}


@torch.no_grad()
def evaluate(model: ClassifierModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    model.eval()
    predicted: list[str] = []
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        ids, atts, _ = text([s["meta"]["sentence"] for s in chunk])
        logits = entailment_logits(model, sample_images(chunk, model.config.image_res), ids, atts)
        predicted.extend(LABELS[i] for i in logits.argmax(dim=-1).tolist())
    truth = [LABELS[label_index(s)] for s in samples]
    predictions = [
        {"key": s["key"], "sentence": s["meta"]["sentence"], "predicted": p, "label": t}
        for s, p, t in zip(samples, predicted, truth)
    ]
    return SplitResult(
        {"accuracy": accuracy(predicted, truth), "majority_accuracy": majority_accuracy(truth)}, predictions
    )
