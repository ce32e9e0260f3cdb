"""Our XVLM computes the same function as the official code on its own checkpoint."""

import torch

from x2vlm_core.checkpoint import load_state_file
from x2vlm_core.models import losses
from x2vlm_core.models.registry import create_model

ATOL = 1e-4


def _official_tiny_model(fixture_dir):
    state = load_state_file(fixture_dir / "x2vlm_tiny.th")
    model = create_model(
        "x2vlm_base", image_res=48, embed_dim=16,
        vision={"depth": 1},
        text={"vocab_size": 64, "hidden_size": 32, "num_layers": 3, "fusion_start_at": 2, "num_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 64},
    )
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_official_checkpoint_loads_strictly_and_matches_reference(official_tiny):
    model = _official_tiny_model(official_tiny)
    ref = torch.load(official_tiny / "reference_io.pt", weights_only=True)
    x, out = ref["inputs"], ref["outputs"]
    with torch.no_grad():
        image_embeds, image_atts = model.get_vision_embeds(x["image"])
        torch.testing.assert_close(image_embeds, out["image_embeds"], atol=ATOL, rtol=0)
        text_embeds = model.get_text_embeds(x["text_ids"], x["text_atts"])
        torch.testing.assert_close(text_embeds, out["text_embeds"], atol=ATOL, rtol=0)
        image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
        torch.testing.assert_close(image_feat, out["image_feat"], atol=ATOL, rtol=0)
        torch.testing.assert_close(image_feat @ text_feat.t() / model.temp, out["itc_sim_i2t"], atol=1e-3, rtol=0)
        cross = model.get_cross_embeds(image_embeds, image_atts, text_embeds, x["text_atts"])
        torch.testing.assert_close(cross, out["cross_pos"], atol=ATOL, rtol=0)
        torch.testing.assert_close(model.itm_head(cross[:, 0]), out["itm_logits_pos"], atol=ATOL, rtol=0)
        rolled = image_embeds[torch.roll(torch.arange(3), 1)]
        torch.testing.assert_close(model.itm_logits(rolled, image_atts, text_embeds, x["text_atts"]),
                                   out["itm_logits_neg"], atol=ATOL, rtol=0)
        torch.testing.assert_close(model.predict_bbox(image_embeds, text_embeds, x["text_atts"]),
                                   out["bbox_pred"], atol=ATOL, rtol=0)
        mlm = model.mlm_logits(x["text_ids_masked"], x["text_atts"], x["masked_pos"], image_embeds, image_atts)
        torch.testing.assert_close(mlm, out["mlm_logits"], atol=ATOL, rtol=0)
        torch.testing.assert_close(losses.mlm_loss(mlm, x["masked_ids"]), out["mlm_loss"], atol=ATOL, rtol=0)
        torch.testing.assert_close(losses.contrastive_loss(image_feat, text_feat, model.temp),
                                   out["fwd_loss_itc"], atol=ATOL, rtol=0)


def test_region_embeddings_and_box_losses_match_reference(official_tiny):
    model = _official_tiny_model(official_tiny)
    ref = torch.load(official_tiny / "reference_io.pt", weights_only=True)
    x, out = ref["inputs"], ref["outputs"]
    with torch.no_grad():
        region, full = model.get_region_embeds(x["image"][:2], x["image_atts_region"], x["idx_to_group_img"])
        torch.testing.assert_close(region, out["region_image_embeds"], atol=ATOL, rtol=0)
        torch.testing.assert_close(full, out["region_image_embeds_fullatts"], atol=ATOL, rtol=0)
        text_embeds = model.get_text_embeds(x["text_ids"], x["text_atts"])
        boxes = model.predict_bbox(full, text_embeds, x["text_atts"])
        torch.testing.assert_close(boxes, out["region_bbox_pred"], atol=ATOL, rtol=0)
        cls = model.get_cross_embeds(region, x["image_atts_region"], text_embeds, x["text_atts"])[:, 0]
        torch.testing.assert_close(cls, out["region_cross_cls"], atol=ATOL, rtol=0)
        torch.testing.assert_close(model.itm_head(cls), out["region_itm_logits"], atol=ATOL, rtol=0)
        l1, giou = losses.bbox_losses(boxes, x["target_bbox"], x["is_image"])
        torch.testing.assert_close(l1, out["region_loss_bbox"], atol=ATOL, rtol=0)
        torch.testing.assert_close(giou, out["region_loss_giou"], atol=ATOL, rtol=0)
