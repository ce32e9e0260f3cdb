"""The X²-VLM objectives: ITC, ITM with hard negatives, MLM, box L1 + GIoU."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from x2vlm_core.models import box_ops
from x2vlm_core.models.protocols import FusionModel


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank; gradients flow back to each rank's own rows.

    Every rank holds the same number of rows: the loaders yield exact-size batches (the region
    batch too, ``exact_size_selection``), so no sizes are exchanged first, and no value is read
    back to the host in the step.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def contrastive_loss(
    image_feat: torch.Tensor, text_feat: torch.Tensor, temp: torch.Tensor, idx: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE over the global batch; with ``idx``, same-id pairs share the target mass."""
    image_all, text_all = gather_with_grad(image_feat), gather_with_grad(text_feat)
    logits = image_all @ text_all.t() / temp
    if idx is None:
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    idx_all = gather_with_grad(idx.view(-1, 1))
    positives = (idx_all == idx_all.t()).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    loss_i2t = -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(logits.t(), dim=1) * targets).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


@torch.no_grad()
def sample_hard_negatives(
    image_feat: torch.Tensor,
    text_feat: torch.Tensor,
    temp: torch.Tensor,
    idx: torch.Tensor | None = None,
    hard: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each text an image, and for each image a text, drawn by similarity (``hard``) or uniformly, never a positive."""
    sim = image_feat @ text_feat.t() / temp
    if hard:
        weights_i2t = F.softmax(sim, dim=1) + 1e-5
        weights_t2i = F.softmax(sim.t(), dim=1) + 1e-5
    else:
        weights_i2t = weights_t2i = torch.ones_like(sim)
    if idx is None:
        same = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    else:
        same = idx.view(-1, 1) == idx.view(1, -1)
    weights_i2t = weights_i2t.masked_fill(same, 0)
    weights_t2i = weights_t2i.masked_fill(same, 0)
    if idx is not None:
        # A row whose every candidate shares its id (a batch of one text) falls back to any other row.
        others = (~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)).to(sim.dtype)
        weights_i2t = torch.where(weights_i2t.sum(1, keepdim=True) > 0, weights_i2t, others)
        weights_t2i = torch.where(weights_t2i.sum(1, keepdim=True) > 0, weights_t2i, others)
    image_neg = torch.multinomial(weights_t2i, 1).squeeze(1)  # an image for each text
    text_neg = torch.multinomial(weights_i2t, 1).squeeze(1)  # a text for each image
    return image_neg, text_neg


def uses_hard_negatives(model: object) -> bool:
    """train.itm_negatives, which the training loop sets on the model; hard (official) otherwise."""
    return getattr(model, "itm_negatives", "hard") == "hard"


def matching_loss(
    model: FusionModel,
    image_embeds: torch.Tensor,
    image_atts: torch.Tensor | None,
    image_feat: torch.Tensor,
    text_embeds: torch.Tensor,
    text_atts: torch.Tensor | None,
    text_feat: torch.Tensor,
    idx: torch.Tensor | None = None,
) -> torch.Tensor:
    """ITM: each positive pair against one hard-negative image and one hard-negative text.

    ``image_atts`` / ``text_atts`` may be ``None`` (nothing masked), as everywhere in the model.
    """
    image_neg, text_neg = sample_hard_negatives(image_feat, text_feat, model.temp, idx, hard=uses_hard_negatives(model))
    image_all = torch.cat([image_embeds, image_embeds[image_neg], image_embeds], dim=0)
    text_all = torch.cat([text_embeds, text_embeds, text_embeds[text_neg]], dim=0)
    image_atts_all = None if image_atts is None else torch.cat([image_atts, image_atts[image_neg], image_atts])
    text_atts_all = None if text_atts is None else torch.cat([text_atts, text_atts, text_atts[text_neg]])
    logits = model.itm_logits(image_all, image_atts_all, text_all, text_atts_all)
    bs = image_embeds.shape[0]
    labels = torch.zeros(3 * bs, dtype=torch.long, device=logits.device)
    labels[:bs] = 1
    return F.cross_entropy(logits, labels)


def mlm_loss(logits: torch.Tensor, masked_ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), masked_ids.flatten(), ignore_index=-100)


def bbox_losses(
    pred: torch.Tensor, target: torch.Tensor, is_image: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 and 1 - GIoU on (cx, cy, w, h), each summed and divided by the number of real boxes.

    Rows with ``is_image == 1`` are whole-image captions with no box of their own.
    """
    l1 = F.l1_loss(pred, target, reduction="none").sum(dim=1)
    pred_xyxy, target_xyxy = box_ops.cxcywh_to_xyxy(pred), box_ops.cxcywh_to_xyxy(target)
    giou = 1 - box_ops.generalized_iou(pred_xyxy, target_xyxy)
    if is_image is None:
        keep = torch.ones_like(l1)
    else:
        keep = 1 - is_image.to(l1.dtype)
    num_boxes = keep.sum().clamp(min=1)  # a batch of only whole-image captions contributes zero
    return (l1 * keep).sum() / num_boxes, (giou * keep).sum() / num_boxes
