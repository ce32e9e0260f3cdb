"""The outputs the official CCLM parity fixture records, computed by our model under the same names.

``reference_io.pt`` in ``cclm_official_tiny/`` (made by running the official ``CrossViewLM`` in
pre-training mode) holds 48 of them, in three groups:

- the image-text stream: encoders, ITC/ITM/MLM/box heads, a second caption per image, the
  region path;
- the parallel-text stream: TTC, TTM (the first sentence takes the image's place), conditional
  MLM, and TLM (both sentences as one masked text, no context);
- the training forwards' losses (``fwd_*``), through this family's objectives. ITM and TTM are
  left out of the forwards: their hard negatives are drawn at random.
"""

from __future__ import annotations

import torch

from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.families.cclm.objectives import image_caption_losses, parallel_text_losses
from x2vlm_core.families.x2vlm.reference_outputs import region_outputs
from x2vlm_core.models import losses
from x2vlm_core.train.pretrain_objective import region_text_losses

_TEXT_KEYS = ("text_ids", "text_atts", "text_ids_masked", "masked_pos", "masked_ids")
_PARA_KEYS = ("text_ids", "text_atts", "text_ids_2", "text_atts_2", "text_ids_masked", "masked_pos", "masked_ids")
GROUPS = ("image_text", "parallel_text", "forward_losses")


def group_of(name: str) -> str:
    """Which of ``GROUPS`` an output belongs to (for reporting differences per group)."""
    if name.startswith("fwd_"):
        return "forward_losses"
    return (
        "parallel_text"
        if name.startswith(("para_", "ttc_sim", "ttm_", "tlm_")) and name != "ttc_sim_captions"
        else "image_text"
    )


def _previous(x: torch.Tensor) -> torch.Tensor:
    """Row i-1 for row i: the fixed negatives the fixture pairs with."""
    return x[torch.roll(torch.arange(x.shape[0], device=x.device), 1)]


def image_text_outputs(model: CCLM, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    image_embeds, image_atts = model.get_vision_embeds(x["image"])
    text_embeds = model.get_text_embeds(x["text_ids"], x["text_atts"])
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    cross = model.get_cross_embeds(image_embeds, image_atts, text_embeds, x["text_atts"])
    mlm = model.mlm_logits(x["text_ids_masked"], x["text_atts"], x["masked_pos"], image_embeds, image_atts)
    text_embeds_2 = model.get_text_embeds(x["text_ids_2"], x["text_atts_2"])
    text_feat_2 = model.get_text_feat(text_embeds_2)
    out = dict(
        image_embeds=image_embeds,
        text_embeds=text_embeds,
        image_feat=image_feat,
        text_feat=text_feat,
        temp=model.temp.reshape(()),
        itc_sim_i2t=image_feat @ text_feat.t() / model.temp,
        cross_pos=cross,
        itm_logits_pos=model.itm_head(cross[:, 0]),
        itm_logits_neg=model.itm_logits(_previous(image_embeds), image_atts, text_embeds, x["text_atts"]),
        bbox_pred=model.predict_bbox(image_embeds, text_embeds, x["text_atts"]),
        mlm_logits=mlm,
        mlm_loss=losses.mlm_loss(mlm, x["masked_ids"]),
        text_embeds_2=text_embeds_2,
        text_feat_2=text_feat_2,
        itc_sim_i2t_2=image_feat @ text_feat_2.t() / model.temp,
        ttc_sim_captions=text_feat @ text_feat_2.t() / model.temp,
    )
    out.update(region_outputs(model, x, text_embeds))
    return out


def parallel_text_outputs(model: CCLM, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    atts, atts_2 = x["para_text_atts"], x["para_text_atts_2"]
    embeds, embeds_2 = (
        model.get_text_embeds(x["para_text_ids"], atts),
        model.get_text_embeds(x["para_text_ids_2"], atts_2),
    )
    feat, feat_2 = model.get_text_feat(embeds), model.get_text_feat(embeds_2)
    # TTM: side 2 queries, side 1 is the context where the image would be.
    cross = model.get_cross_embeds(embeds, atts, embeds_2, atts_2)
    mlm = model.mlm_logits(x["para_text_ids_masked"], atts, x["para_masked_pos"], embeds_2, atts_2)
    tlm = model.mlm_logits(x["tlm_ids_masked"], x["tlm_atts"], x["tlm_masked_pos"], None, None)
    return dict(
        para_text_embeds=embeds,
        para_text_embeds_2=embeds_2,
        para_text_feat=feat,
        para_text_feat_2=feat_2,
        ttc_sim=feat @ feat_2.t() / model.temp,
        para_cross_pos=cross,
        ttm_logits_pos=model.itm_head(cross[:, 0]),
        ttm_logits_neg=model.itm_logits(_previous(embeds), _previous(atts), embeds_2, atts_2),
        para_mlm_logits=mlm,
        para_mlm_loss=losses.mlm_loss(mlm, x["para_masked_ids"]),
        tlm_logits=tlm,
        tlm_loss=losses.mlm_loss(tlm, x["tlm_masked_ids"]),
    )


def forward_losses(model: CCLM, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The training objectives on the fixture's batches (official ``forward`` with each stream's inputs)."""
    batch = {"image": x["image"], **{k: x[k] for k in _TEXT_KEYS}}
    one = image_caption_losses(model, batch, with_itm=False)
    two = image_caption_losses(
        model, {**batch, "text_ids_2": x["text_ids_2"], "text_atts_2": x["text_atts_2"]}, with_itm=False
    )
    regions = {
        **batch,
        "image": x["image"][:2],
        "image_atts": x["image_atts_region"],
        "idx_to_group_img": x["idx_to_group_img"],
        "target_bbox": x["target_bbox"],
        "is_image": x["is_image"],
    }
    region = region_text_losses(model, regions, with_itm=False)
    para = parallel_text_losses(model, {k: x[f"para_{k}"] for k in _PARA_KEYS}, with_ttm=False)
    # TLM (official use_tlm): the same TTC, and MLM over both sentences as one text without context.
    tlm_logits = model.mlm_logits(x["tlm_ids_masked"], x["tlm_atts"], x["tlm_masked_pos"], None, None)
    out = {
        "fwd_loss_itc": one["itc"],
        "fwd_loss_mlm": one["mlm"],
        "fwd_mm2_loss_itc": two["itc"],
        "fwd_mm2_loss_ttc": two["ttc"],
        "fwd_mm2_loss_mlm": two["mlm"],
        "fwd_para_loss_ttc": para["ttc"],
        "fwd_para_loss_mlm": para["cmlm"],
        "fwd_tlm_loss_ttc": para["ttc"],
        "fwd_tlm_loss_mlm": losses.mlm_loss(tlm_logits, x["tlm_masked_ids"]),
    }
    out.update({f"fwd_region_loss_{name}": region[f"region_{name}"] for name in ("itc", "mlm", "bbox", "giou")})
    return out


def reference_outputs(model: CCLM, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our values of the 48 outputs in ``reference_io.pt``, under the same names."""
    return {**image_text_outputs(model, x), **parallel_text_outputs(model, x), **forward_losses(model, x)}
