"""The outputs the official X²-VLM parity fixture records, computed by our model under the same names.

``reference_io.pt`` (made by running the official ``XVLM`` in pre-training mode) holds 25 of
them: the encoders, the ITC/ITM/MLM/box heads, the region path, and the training forward's
losses. ITM is left out of the forward: its hard negatives are drawn at random.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from x2vlm_core.models import losses
from x2vlm_core.models.protocols import FusionModel
from x2vlm_core.train.pretrain_objective import image_text_losses, region_text_losses

_TEXT_KEYS = ("text_ids", "text_atts", "text_ids_masked", "masked_pos", "masked_ids")


class ReferenceModel(FusionModel, Protocol):
    """A fusion model with its ITM head exposed: X²-VLM's ``XVLM``, X-VLM's ``XVLMModel``."""

    @property
    def itm_head(self) -> nn.Module: ...


def reference_outputs(model: ReferenceModel, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our values of the 25 outputs in ``reference_io.pt``, under the same names."""
    image_embeds, image_atts = model.get_vision_embeds(x["image"])
    text_embeds = model.get_text_embeds(x["text_ids"], x["text_atts"])
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    cross = model.get_cross_embeds(image_embeds, image_atts, text_embeds, x["text_atts"])
    previous_image = image_embeds[torch.roll(torch.arange(image_embeds.shape[0]), 1)]
    mlm = model.mlm_logits(x["text_ids_masked"], x["text_atts"], x["masked_pos"], image_embeds, image_atts)
    out = dict(
        image_embeds=image_embeds,
        text_embeds=text_embeds,
        image_feat=image_feat,
        text_feat=text_feat,
        temp=model.temp.reshape(()),
        itc_sim_i2t=image_feat @ text_feat.t() / model.temp,
        cross_pos=cross,
        itm_logits_pos=model.itm_head(cross[:, 0]),
        itm_logits_neg=model.itm_logits(previous_image, image_atts, text_embeds, x["text_atts"]),
        bbox_pred=model.predict_bbox(image_embeds, text_embeds, x["text_atts"]),
        mlm_logits=mlm,
        mlm_loss=losses.mlm_loss(mlm, x["masked_ids"]),
    )

    out.update(region_outputs(model, x, text_embeds))

    # The training forward itself; ITM is left out because its hard negatives are sampled at random.
    batch = {"image": x["image"], **{k: x[k] for k in _TEXT_KEYS}}
    fwd = image_text_losses(model, batch, with_itm=False)
    regions = {
        **batch,
        "image": x["image"][:2],
        "image_atts": x["image_atts_region"],
        "idx_to_group_img": x["idx_to_group_img"],
        "target_bbox": x["target_bbox"],
        "is_image": x["is_image"],
    }
    fwd_region = region_text_losses(model, regions, with_itm=False)
    out.update(fwd_loss_itc=fwd["itc"], fwd_loss_mlm=fwd["mlm"])
    out.update({f"fwd_region_loss_{name}": fwd_region[f"region_{name}"] for name in ("itc", "mlm", "bbox", "giou")})
    return out


def region_outputs(model: Any, x: dict[str, torch.Tensor], text_embeds: torch.Tensor) -> dict[str, torch.Tensor]:
    """The fixtures' region block: the first two images' region embeddings, boxes, region ITM, box losses."""
    region, full = model.get_region_embeds(x["image"][:2], x["image_atts_region"], x["idx_to_group_img"])
    boxes = model.predict_bbox(full, text_embeds, x["text_atts"])
    region_cls = model.get_cross_embeds(region, x["image_atts_region"], text_embeds, x["text_atts"])[:, 0]
    loss_bbox, loss_giou = losses.bbox_losses(boxes, x["target_bbox"], x["is_image"])
    return dict(
        region_loss_bbox=loss_bbox,
        region_loss_giou=loss_giou,
        region_image_embeds=region,
        region_image_embeds_fullatts=full,
        region_bbox_pred=boxes,
        region_cross_cls=region_cls,
        region_itm_logits=model.itm_head(region_cls),
    )
