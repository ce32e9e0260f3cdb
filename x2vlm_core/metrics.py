"""Task metrics, with the definitions the X-VLM / X²-VLM papers report (as fractions in [0, 1])."""

from __future__ import annotations

import numpy as np
import torch

from x2vlm_core.models import box_ops


def retrieval_recall(scores_i2t: np.ndarray, scores_t2i: np.ndarray, txt2img: list[int],
                     img2txt: list[list[int]]) -> dict[str, float]:
    """R@1/5/10 both ways; an image counts as hit at k if any of its captions ranks within k."""
    order_i2t = np.argsort(-scores_i2t, axis=1, kind="stable")
    tr_ranks = np.array([min(int(np.where(order_i2t[i] == t)[0][0]) for t in img2txt[i])
                         for i in range(len(img2txt))])
    order_t2i = np.argsort(-scores_t2i, axis=1, kind="stable")
    ir_ranks = np.array([int(np.where(order_t2i[t] == txt2img[t])[0][0]) for t in range(len(txt2img))])
    out = {}
    for prefix, ranks in (("txt", tr_ranks), ("img", ir_ranks)):
        for k in (1, 5, 10):
            out[f"{prefix}_r{k}"] = float(np.mean(ranks < k))
        out[f"{prefix}_r_mean"] = (out[f"{prefix}_r1"] + out[f"{prefix}_r5"] + out[f"{prefix}_r10"]) / 3
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
