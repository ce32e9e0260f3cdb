"""Video QA (MSRVTT-QA, MSVD-QA): a classifier over the fused [CLS] of question and video; accuracy.

As the official video QA scripts: the classes are the most frequent training answers
(MSRVTT-QA: 1,500); training ignores questions whose answer is not a class, evaluation counts
them wrong.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.metrics import accuracy, majority_accuracy
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import ClassifierModel
from x2vlm_core.models.task_heads import TaskHeads, required_task_heads
from x2vlm_core.tasks.answers import answer_vocabulary, sample_answers
from x2vlm_core.tasks.frames import video_batch
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check
from x2vlm_core.tasks.video_retrieval import VIDEO_FRAMES

DATASET = "video_qa"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("val", "test")
NUM_CLASSES = 1500
IGNORED = -100  # an answer outside the classes
report_section = report.video_qa_section
check_model = model_check("video_qa", "video_qa", video=True)


@dataclass
class EvalConfig:
    batch_size: int = 32  # questions (clips) per forward pass


def build_model(pretrained: str | Path, shards_root: str | Path) -> ClassifierModel:
    classes = answer_vocabulary(shards_root, DATASET, TRAIN_SPLIT, NUM_CLASSES)
    heads = TaskHeads(task="video_qa", cls_inputs=1, labels=classes)
    return build_task_model(pretrained, heads, frame_len=VIDEO_FRAMES)[0]


def _truth(meta: dict[str, Any]) -> str:
    answers = sample_answers(meta)
    return max(set(answers), key=lambda a: (answers.count(a), a)) if answers else ""


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random, classes: dict[str, int]
) -> dict[str, torch.Tensor]:
    ids, atts, _ = text([s["meta"]["question"] for s in samples])
    labels = [classes.get(_truth(s["meta"]), IGNORED) for s in samples]
    return {
        "image": video_batch(samples, config.image_res, config.frame_len, True, rng),
        "text_ids": ids,
        "text_atts": atts,
        "label": torch.tensor(labels, dtype=torch.long),
    }


def collate_options(model: ClassifierModel) -> dict[str, Any]:
    """What ``train_collate`` needs from the built model: the class of each answer."""
    return {"classes": {answer: i for i, answer in enumerate(required_task_heads(model).labels)}}


def logits(
    model: ClassifierModel, video: torch.Tensor, text_ids: torch.Tensor, text_atts: torch.Tensor
) -> torch.Tensor:
    video_embeds, video_atts = model.get_vision_embeds(video)
    fused = model.get_cross_embeds(video_embeds, video_atts, model.get_text_embeds(text_ids, text_atts), text_atts)
    return model.cls_head(fused[:, 0])


def objective(model: ClassifierModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    scores = logits(model, batch["image"], batch["text_ids"], batch["text_atts"])
    # Summed over the known answers only: a batch without any gives 0, not NaN.
    loss = F.cross_entropy(scores, batch["label"], ignore_index=IGNORED, reduction="sum")
    return {"video_qa": loss / (batch["label"] != IGNORED).sum().clamp(min=1)}


@torch.no_grad()
def evaluate(model: ClassifierModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    model.eval()
    classes = required_task_heads(model).labels
    rng = random.Random(0)
    predicted: list[str] = []
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        video = video_batch(chunk, model.config.image_res, model.config.frame_len, False, rng)
        ids, atts, _ = text([s["meta"]["question"] for s in chunk])
        predicted.extend(classes[i] for i in logits(model, video, ids, atts).argmax(dim=-1).tolist())
    truth = [_truth(s["meta"]) for s in samples]
    predictions = [
        {"key": s["key"], "question": s["meta"]["question"], "answer": p, "truth": t, "in_classes": t in classes}
        for s, p, t in zip(samples, predicted, truth)
    ]
    return SplitResult(
        {"accuracy": accuracy(predicted, truth), "majority_accuracy": majority_accuracy(truth)}, predictions
    )
