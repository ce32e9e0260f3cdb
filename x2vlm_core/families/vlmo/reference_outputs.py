"""The outputs the official VLMo parity fixture records, computed by our model under the same names.

``reference_io.pt`` (made by running the official ``VLMo`` LightningModule) holds 40 of them:
each encoder path layer by layer (image and text alone, with their own expert in every block;
the two fused), the four contrastive projections and both temperatures, ITM, MLM (fused and
text only), VQA and NLVR2, their losses as the official code returns them, and the index maps
into the shared relative position table. MLM logits are taken at every text position.
"""

from __future__ import annotations

import torch

from x2vlm_core.families.vlmo.model import IMAGE_TOKEN_TYPE, SECOND_IMAGE_TOKEN_TYPE, VLMo
from x2vlm_core.families.vlmo.objectives import image_text_losses, nlvr2_losses, text_only_losses, vqa_losses
from x2vlm_core.families.vlmo.positions import text_image_index


def _layer_outputs(
    model: VLMo, x: torch.Tensor, keep: torch.Tensor, mode: str, index: torch.Tensor | None, text_len: int = 0
) -> torch.Tensor:
    """``[depth, B, N, D]``: each block's output, before the final norm."""
    bias, outputs = model._bias(index), []
    for block in range(model.config.depth):
        x = model.transformer.run(x, keep, mode, bias, block, block + 1, text_len=text_len)
        outputs.append(x)
    return torch.stack(outputs)


def reference_outputs(model: VLMo, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    text_ids, text_atts = x["text_ids"], x["text_masks"]
    length = text_ids.shape[1]
    out: dict[str, torch.Tensor] = {}

    image = model.embed_image(x["image"])
    image_atts = torch.ones(image.shape[:2], dtype=text_atts.dtype, device=image.device)
    image_index, text_index = model._image_index(), model._text_index(length)
    if image_index is None or text_index is None:
        raise ValueError(
            "the official VLMo outputs include the relative position indices; "
            "this model is configured without relative positions"
        )
    layers = _layer_outputs(model, image, image_atts, "image", image_index)
    (image_feat, image_vl_feat), (top, vl_top) = (
        model.image_features(image, with_vl=True),
        model.encode_image(image, True),
    )
    assert image_vl_feat is not None and vl_top is not None  # with_vl=True computes the VL-FFN path
    out.update(
        image_embeds=image,
        image_layer_outputs=layers,
        image_raw_cls=layers[-1][:, 0],
        image_feats=top,
        image_cls_feats=image_feat,
        image_vlffn_feats=vl_top,
        image_vlffn_cls_feats=image_vl_feat,
    )

    text = model.embed_text(text_ids)
    layers = _layer_outputs(model, text, text_atts, "text", text_index)
    (text_feat, text_vl_feat), (top, vl_top) = (
        model.text_features(text, text_atts, with_vl=True),
        model.encode_text(text, text_atts, True),
    )
    assert text_vl_feat is not None and vl_top is not None  # with_vl=True computes the VL-FFN path
    out.update(
        text_embeds=text,
        text_layer_outputs=layers,
        text_raw_cls=layers[-1][:, 0],
        text_feats=top,
        text_cls_feats=text_feat,
        text_vlffn_feats=vl_top,
        text_vlffn_cls_feats=text_vl_feat,
    )

    scale, vl_scale = 1 / model.temperature.reshape(()), 1 / model.vl_temperature.reshape(())
    out.update(
        itc_logit_scale=scale,
        itc_logit_vl_scale=vl_scale,
        itc_i2t_logits=scale * image_feat @ text_feat.t(),
        itc_t2i_logits=scale * text_feat @ image_feat.t(),
        itc_vl_i2t_logits=vl_scale * image_vl_feat @ text_vl_feat.t(),
    )

    previous = torch.roll(torch.arange(image.shape[0], device=image.device), 1)  # image i-1 with text i
    vl_index = text_image_index(text_index, image_index, model.config.num_patches_side)
    vl_atts = torch.cat([text_atts, image_atts], dim=1)
    fused = model.fuse(image, image_atts, text, text_atts)
    out.update(
        vl_embeds=torch.cat([text, image], dim=1),
        vl_layer_outputs=_layer_outputs(model, torch.cat([text, image], dim=1), vl_atts, "vl", vl_index, length),
        vl_text_feats=fused[:, :length],
        vl_image_feats=fused[:, length:],
        vl_raw_cls=fused[:, 0],
        vl_cls_feats=model.pooler(fused),
        itm_logits_pos=model.itm_logits(image, image_atts, text, text_atts),
        itm_logits_neg=model.itm_logits(image[previous], image_atts, text, text_atts),
    )

    every_position = torch.arange(length, device=text_ids.device).expand(text_ids.shape[0], -1)
    masked = {
        "image": x["image"],
        "text_ids": text_ids,
        "text_atts": text_atts,
        "text_ids_masked": x["text_ids_mlm"],
        "masked_pos": every_position,
        "masked_ids": x["text_labels_mlm"],
    }
    fwd = image_text_losses(model, masked, with_itm=False)
    out.update(
        itc_loss=fwd["itc"],
        mlm_loss=fwd["mlm"],
        mlm_logits=model.mlm_logits(x["text_ids_mlm"], text_atts, every_position, image, image_atts),
        textmlm_logits=model.mlm_logits(x["text_ids_mlm"], text_atts, every_position),
        textmlm_loss=text_only_losses(model, masked)["text_mlm"],
    )

    if "vqa" in model.config.task_heads:
        question = {
            "image": x["image"],
            "question_ids": text_ids,
            "question_atts": text_atts,
            "answer_targets": x["vqa_targets"],
        }
        out.update(vqa_logits=model.vqa_logits(image, text, text_atts), vqa_loss=vqa_losses(model, question)["vqa"])
    if "nlvr2" in model.config.task_heads:
        pair = {
            "left": x["image"],
            "right": x["image_1"],
            "text_ids": text_ids,
            "text_atts": text_atts,
            "label": x["nlvr2_labels"],
        }
        pooled = [
            model.pooler(model.fuse(model.embed_image(img, token_type), image_atts, text, text_atts))
            for img, token_type in ((x["image"], IMAGE_TOKEN_TYPE), (x["image_1"], SECOND_IMAGE_TOKEN_TYPE))
        ]
        out.update(
            nlvr2_cls_feats=torch.cat(pooled, dim=-1),
            nlvr2_logits=model.nlvr2_logits(x["image"], x["image_1"], text_ids, text_atts),
            nlvr2_loss=nlvr2_losses(model, pair)["nlvr2"],
        )
    out.update(rel_pos_index_image=image_index, rel_pos_index_text=text_index, rel_pos_index_vl=vl_index)
    return out
