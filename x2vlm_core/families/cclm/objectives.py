"""The CCLM objectives: ``objective(model, batch) -> {name: loss}``, summed by the training loop.

Cross-view language modeling treats an image and its caption, and a sentence and its translation,
alike: two views of one meaning, aligned by the same three losses (the official ``CrossViewLM``):

- image-caption (``image_caption_losses``): ITC, ITM with hard negatives, MLM of the caption fused
  with the image; with ``text_ids_2`` (the caption in a second language) ITC is averaged over both
  captions and TTC aligns the two captions;
- parallel text (``parallel_text_losses``): TTC (text-text contrastive), TTM (text-text matching
  with hard negatives: the first view is the cross encoder's context, the second its query) and
  conditional MLM of the masked first view, cross-attending to the second view's embeddings.

The batches are those of ``families.cclm.collate``; region-text batches take X²-VLM's
``train.pretrain_objective.region_text_losses`` unchanged (CCLM has the same encoder interface).
"""

from __future__ import annotations

import torch

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.models import losses


def image_caption_losses(model: CCLM, batch: dict[str, torch.Tensor], with_itm: bool = True) -> dict[str, torch.Tensor]:
    image_embeds, image_atts = model.get_vision_embeds(batch["image"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    out = {"itc": losses.contrastive_loss(image_feat, text_feat, model.temp)}
    if "text_ids_2" in batch:  # the same image's caption in another language
        text_feat_2 = model.get_text_feat(model.get_text_embeds(batch["text_ids_2"], batch["text_atts_2"]))
        out["itc"] = (out["itc"] + losses.contrastive_loss(image_feat, text_feat_2, model.temp)) / 2
        out["ttc"] = losses.contrastive_loss(text_feat, text_feat_2, model.temp)
    if with_itm:
        out["itm"] = losses.matching_loss(
            model, image_embeds, image_atts, image_feat, text_embeds, batch["text_atts"], text_feat
        )
    logits = model.mlm_logits(
        batch["text_ids_masked"], batch["text_atts"], batch["masked_pos"], image_embeds, image_atts
    )
    out["mlm"] = losses.mlm_loss(logits, batch["masked_ids"])
    return out


def parallel_text_losses(model: CCLM, batch: dict[str, torch.Tensor], with_ttm: bool = True) -> dict[str, torch.Tensor]:
    if model.config.text_width != model.config.vision_width:
        raise ConfigError(
            f"parallel-text objectives fuse a text with another text through the cross encoder, whose "
            f"keys take {model.config.vision_width}-wide inputs (the vision width); this text encoder is "
            f"{model.config.text_width} wide. Use a text encoder as wide as the vision encoder"
        )
    atts, atts_2 = batch["text_atts"], batch["text_atts_2"]
    embeds, embeds_2 = (
        model.get_text_embeds(batch["text_ids"], atts),
        model.get_text_embeds(batch["text_ids_2"], atts_2),
    )
    feat, feat_2 = model.get_text_feat(embeds), model.get_text_feat(embeds_2)
    out = {"ttc": losses.contrastive_loss(feat, feat_2, model.temp)}
    if with_ttm:
        # The first view takes the image's place: the cross encoder's context, with its own negatives.
        out["ttm"] = losses.matching_loss(model, embeds, atts, feat, embeds_2, atts_2, feat_2)
    logits = model.mlm_logits(batch["text_ids_masked"], atts, batch["masked_pos"], embeds_2, atts_2)
    out["cmlm"] = losses.mlm_loss(logits, batch["masked_ids"])
    return out


STREAM_LOSSES = {"image_text": image_caption_losses, "parallel_text": parallel_text_losses}
