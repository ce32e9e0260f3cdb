"""Text-video retrieval (MSRVTT): retrieval's ITC + ITM on frame-averaged video embeddings; text→video R@1/5/10.

Each clip's frames are encoded one by one, get a learned frame position embedding and are
averaged per patch (``VisionLanguageModel.get_vision_embeds`` on ``[B, F, 3, H, W]``). An image model
becomes a video model of ``VIDEO_FRAMES`` frames when fine-tuned here.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from x2vlm_core.data.collate import TextEncoder, positive_ids
from x2vlm_core.evaluation import report
from x2vlm_core.families.x2vlm.presets import PRESETS
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import FusionModel
from x2vlm_core.tasks import retrieval
from x2vlm_core.tasks.frames import video_batch
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check

DATASET = "video_retrieval"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("test",)
VIDEO_FRAMES = PRESETS["x2vlm_base_video"]["frame_len"]
EvalConfig = retrieval.EvalConfig
objective = retrieval.objective
report_section = report.retrieval_section
check_model = model_check("video_retrieval", video=True)
# Text → video is what MSRVTT papers report; video → text is kept as well.
METRIC_NAMES = {"img": "t2v", "txt": "v2t"}


def build_model(pretrained: str | Path, shards_root: str | Path) -> FusionModel:
    return build_task_model(pretrained, frame_len=VIDEO_FRAMES)[0]


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    captions = [rng.choice(s["meta"]["captions"]) for s in samples]
    ids, atts, _ = text(captions)
    return {
        "image": video_batch(samples, config.image_res, config.frame_len, True, rng),
        "text_ids": ids,
        "text_atts": atts,
        "idx": positive_ids([s["key"] for s in samples], captions, text.max_tokens),
    }


def evaluate(model: FusionModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig) -> SplitResult:
    rng = random.Random(0)
    result = retrieval.evaluate_retrieval(
        model,
        samples,
        text,
        cfg,
        lambda chunk: video_batch(chunk, model.config.image_res, model.config.frame_len, False, rng),
    )
    metrics = {}
    for name, value in result.metrics.items():
        prefix, _, rest = name.partition("_")
        metrics[f"{METRIC_NAMES[prefix]}_{rest}" if prefix in METRIC_NAMES else name] = value
    return SplitResult(metrics, result.predictions)
