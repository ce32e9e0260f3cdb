"""Checking this implementation against the official one on the official parity fixture.

The fixture (``x2vlm_tiny.th`` + ``reference_io.pt``, made by running the official X²-VLM
code) holds 25 named outputs. ``max_abs_diffs`` recomputes each with our model, on any
device, so a new machine or a changed kernel can be checked in one call.
"""

from __future__ import annotations

from pathlib import Path

import torch

from x2vlm_core.release.model_folder import init_from, load_state_file
from x2vlm_core.errors import CheckpointError
from x2vlm_core.models import losses
from x2vlm_core.families import create_model
from x2vlm_core.families.x2vlm.model import XVLM
from x2vlm_core.train.pretrain_objective import image_text_losses, region_text_losses

# The fixture's shape: BEiT-2 base width with one block, a 3-layer BERT of width 32.
FIXTURE_IMAGE_RES = 48
FIXTURE_SHAPE = dict(
    embed_dim=16, vision={"depth": 1},
    text={"vocab_size": 64, "hidden_size": 32, "num_layers": 3, "fusion_start_at": 2, "num_heads": 2,
          "intermediate_size": 64, "max_position_embeddings": 64},
)
_TEXT_KEYS = ("text_ids", "text_atts", "text_ids_masked", "masked_pos", "masked_ids")


def official_tiny_model(fixture_dir: str | Path, image_res: int = FIXTURE_IMAGE_RES) -> XVLM:
    """The fixture's checkpoint in our model: strictly at its own size, resized otherwise."""
    model = create_model("x2vlm_base", image_res=image_res, **FIXTURE_SHAPE)
    checkpoint = Path(fixture_dir) / "x2vlm_tiny.th"
    if image_res == FIXTURE_IMAGE_RES:
        model.load_state_dict(load_state_file(checkpoint), strict=True)
    else:
        left_at_init = init_from(model, checkpoint)
        if left_at_init:
            raise CheckpointError(f"{checkpoint} left {left_at_init[:3]} at their init; is it the parity fixture?")
    return model.eval()


def reference_outputs(model: XVLM, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our values of the 25 outputs in ``reference_io.pt``, under the same names."""
    image_embeds, image_atts = model.get_vision_embeds(x["image"])
    text_embeds = model.get_text_embeds(x["text_ids"], x["text_atts"])
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    cross = model.get_cross_embeds(image_embeds, image_atts, text_embeds, x["text_atts"])
    previous_image = image_embeds[torch.roll(torch.arange(image_embeds.shape[0]), 1)]
    mlm = model.mlm_logits(x["text_ids_masked"], x["text_atts"], x["masked_pos"], image_embeds, image_atts)
    out = dict(
        image_embeds=image_embeds, text_embeds=text_embeds, image_feat=image_feat, text_feat=text_feat,
        temp=model.temp.reshape(()), itc_sim_i2t=image_feat @ text_feat.t() / model.temp,
        cross_pos=cross, itm_logits_pos=model.itm_head(cross[:, 0]),
        itm_logits_neg=model.itm_logits(previous_image, image_atts, text_embeds, x["text_atts"]),
        bbox_pred=model.predict_bbox(image_embeds, text_embeds, x["text_atts"]),
        mlm_logits=mlm, mlm_loss=losses.mlm_loss(mlm, x["masked_ids"]),
    )

    region, full = model.get_region_embeds(x["image"][:2], x["image_atts_region"], x["idx_to_group_img"])
    boxes = model.predict_bbox(full, text_embeds, x["text_atts"])
    region_cls = model.get_cross_embeds(region, x["image_atts_region"], text_embeds, x["text_atts"])[:, 0]
    out["region_loss_bbox"], out["region_loss_giou"] = losses.bbox_losses(boxes, x["target_bbox"], x["is_image"])
    out.update(region_image_embeds=region, region_image_embeds_fullatts=full, region_bbox_pred=boxes,
               region_cross_cls=region_cls, region_itm_logits=model.itm_head(region_cls))

    # The training forward itself; ITM is left out because its hard negatives are sampled at random.
    batch = {"image": x["image"], **{k: x[k] for k in _TEXT_KEYS}}
    fwd = image_text_losses(model, batch, with_itm=False)
    regions = {**batch, "image": x["image"][:2], "image_atts": x["image_atts_region"],
               "idx_to_group_img": x["idx_to_group_img"], "target_bbox": x["target_bbox"], "is_image": x["is_image"]}
    fwd_region = region_text_losses(model, regions, with_itm=False)
    out.update(fwd_loss_itc=fwd["itc"], fwd_loss_mlm=fwd["mlm"])
    out.update({f"fwd_region_loss_{name}": fwd_region[f"region_{name}"] for name in ("itc", "mlm", "bbox", "giou")})
    return out


def max_abs_diffs(fixture_dir: str | Path, device: str | torch.device = "cpu") -> dict[str, float]:
    """Max abs difference of each reference output, ours (fp32 on ``device``) vs the official."""
    ref = torch.load(Path(fixture_dir) / "reference_io.pt", weights_only=True)
    model = official_tiny_model(fixture_dir).to(device)
    inputs = {k: v.to(device) for k, v in ref["inputs"].items()}
    with torch.no_grad():
        ours = reference_outputs(model, inputs)
    missing = sorted(set(ref["outputs"]) - set(ours))
    if missing:
        raise KeyError(f"reference outputs this check does not compute: {missing}")
    return {name: (ours[name].float().cpu() - ref["outputs"][name].float()).abs().max().item() for name in ours}
