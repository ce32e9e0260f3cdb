"""The pre-training loss: ITC + ITM + MLM on image-text (and video-text), plus box losses on region-text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

import torch

from x2vlm_core.families.spec import VisionLanguageModel
from x2vlm_core.models import losses
from x2vlm_core.models.protocols import FusionModel


def _alignment_losses(
    model: FusionModel,
    image_embeds: torch.Tensor,
    image_atts: torch.Tensor,
    text_embeds: torch.Tensor,
    batch: dict[str, torch.Tensor],
    with_itm: bool,
    prefix: str,
) -> dict[str, torch.Tensor]:
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    idx = batch.get("idx")  # rows with the same image or the same text are positives of each other
    out = {f"{prefix}itc": losses.contrastive_loss(image_feat, text_feat, model.temp, idx=idx)}
    if with_itm:
        out[f"{prefix}itm"] = losses.matching_loss(
            model, image_embeds, image_atts, image_feat, text_embeds, batch["text_atts"], text_feat, idx=idx
        )
    logits = model.mlm_logits(
        batch["text_ids_masked"], batch["text_atts"], batch["masked_pos"], image_embeds, image_atts
    )
    out[f"{prefix}mlm"] = losses.mlm_loss(logits, batch["masked_ids"])
    return out


def image_text_losses(
    model: FusionModel, batch: dict[str, torch.Tensor], with_itm: bool = True
) -> dict[str, torch.Tensor]:
    image_embeds, image_atts = model.get_vision_embeds(batch["image"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    return _alignment_losses(model, image_embeds, image_atts, text_embeds, batch, with_itm, prefix="")


def region_text_losses(
    model: FusionModel, batch: dict[str, torch.Tensor], with_itm: bool = True
) -> dict[str, torch.Tensor]:
    """Texts align with their region's pooled patches; boxes are predicted from the whole image."""
    region_embeds, full_embeds = model.get_region_embeds(batch["image"], batch["image_atts"], batch["idx_to_group_img"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    out = _alignment_losses(model, region_embeds, batch["image_atts"], text_embeds, batch, with_itm, prefix="region_")
    boxes = model.predict_bbox(full_embeds, text_embeds, batch["text_atts"])
    out["region_bbox"], out["region_giou"] = losses.bbox_losses(boxes, batch["target_bbox"], batch["is_image"])
    return out


def video_text_losses(
    model: FusionModel, batch: dict[str, torch.Tensor], with_itm: bool = True
) -> dict[str, torch.Tensor]:
    """Clips ``image`` [B, F, 3, H, W]: frames encoded one by one, averaged per patch, then as image-text."""
    image_embeds, image_atts = model.get_vision_embeds(batch["image"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    return _alignment_losses(model, image_embeds, image_atts, text_embeds, batch, with_itm, prefix="video_")


STREAM_LOSSES = {"image_text": image_text_losses, "region_text": region_text_losses, "video_text": video_text_losses}


def pretraining_losses(
    model: FusionModel,
    image_batch: dict[str, torch.Tensor],
    region_batch: dict[str, torch.Tensor],
    with_itm: bool = True,
) -> dict[str, torch.Tensor]:
    """The official pre-training loss is the unweighted sum of these terms."""
    return {**image_text_losses(model, image_batch, with_itm), **region_text_losses(model, region_batch, with_itm)}


StreamLoss = Callable[..., dict[str, torch.Tensor]]


def mixed_stream_losses(
    model: VisionLanguageModel,
    *batches: dict[str, torch.Tensor],
    streams: tuple[str, ...],
    weights: tuple[float, ...],
    with_itm: bool = True,
    stream_losses: Mapping[str, StreamLoss] = STREAM_LOSSES,
) -> dict[str, torch.Tensor]:
    """Every stream's terms, plus ``loss``: each stream's sum times its weight (the official iter_perc).

    ``stream_losses`` maps a stream to its ``(model, batch, with_itm) -> terms``: another model
    family's objectives (X²-VLM's by default).
    """
    out: dict[str, torch.Tensor] = {}
    total: torch.Tensor | None = None
    for stream, weight, batch in zip(streams, weights, batches, strict=True):
        terms = stream_losses[stream](model, batch, with_itm)
        out.update(terms)
        part = weight * cast(torch.Tensor, sum(terms.values()))  # a stream has terms: never sum()'s start 0
        total = part if total is None else total + part
    if total is None:
        raise ValueError("mixed_stream_losses needs at least one stream")
    out["loss"] = total
    return out
