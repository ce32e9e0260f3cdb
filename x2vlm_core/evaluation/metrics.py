"""Task metrics with the definitions the X-VLM / X²-VLM papers report, as fractions in [0, 1] (papers print x100).

VQA accuracy lives in ``vqa_accuracy.py`` and the captioning scores in ``caption_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from x2vlm_core.models import box_ops

RECALL_AT = (1, 5, 10)


def _ranks_best_first(scores: np.ndarray) -> np.ndarray:
    """Each row's columns from best to worst, ties broken as the official itm_eval does (reversed argsort)."""
    return np.argsort(scores, axis=1)[:, ::-1]


def retrieval_recall(
    scores_i2t: np.ndarray, scores_t2i: np.ndarray, txt2img: Sequence[int], img2txt: Sequence[Sequence[int]]
) -> dict[str, float]:
    """Text retrieval (image → text) and image retrieval (text → image) R@1/5/10 and their means.

    An image query scores a hit at k when any of its captions ranks within the first k;
    a text query when its one image does. ``r_mean`` averages the two means (official itm_eval).
    """
    order_i2t = _ranks_best_first(np.asarray(scores_i2t))
    tr_ranks = np.array(
        [min(int(np.flatnonzero(order_i2t[i] == t)[0]) for t in texts) for i, texts in enumerate(img2txt)]
    )
    order_t2i = _ranks_best_first(np.asarray(scores_t2i))
    ir_ranks = np.array([int(np.flatnonzero(order_t2i[t] == image)[0]) for t, image in enumerate(txt2img)])
    out: dict[str, float] = {}
    for prefix, ranks in (("txt", tr_ranks), ("img", ir_ranks)):
        for k in RECALL_AT:
            out[f"{prefix}_r{k}"] = float(np.mean(ranks < k))
        out[f"{prefix}_r_mean"] = sum(out[f"{prefix}_r{k}"] for k in RECALL_AT) / len(RECALL_AT)
    out["r_mean"] = (out["txt_r_mean"] + out["img_r_mean"]) / 2
    return out


def box_iou_xywh(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Row-wise IoU of (x, y, w, h) boxes."""

    def xyxy(b: torch.Tensor) -> torch.Tensor:
        return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)

    iou, _ = box_ops.pairwise_iou(xyxy(pred), xyxy(target))
    return iou


def grounding_accuracy(pred_xywh: torch.Tensor, target_xywh: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of referring expressions whose predicted box has IoU >= 0.5 with the truth."""
    if len(pred_xywh) == 0:
        return 0.0
    return float((box_iou_xywh(pred_xywh, target_xywh) >= threshold).float().mean())


def majority_accuracy(truth: Sequence[object]) -> float:
    """What always giving the split's most frequent label scores: the baseline a classifier must beat."""
    known = [t for t in truth if t is not None]
    if not known:
        return 0.0
    return max(known.count(label) for label in set(known)) / len(truth)


def accuracy(predicted: Sequence[object], truth: Sequence[object]) -> float:
    """Exact-match accuracy (NLVR2, video QA); a truth of ``None`` (an answer outside the classes) counts as wrong."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} labels")
    if not truth:
        return 0.0
    return sum(t is not None and p == t for p, t in zip(predicted, truth)) / len(truth)
