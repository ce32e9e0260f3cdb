"""The X-VLM family: registered presets with the official sizes, its image encoders, its tasks."""

import pytest
import torch

from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, family_of, get_family, model_config, preset_names


def count(name: str, **overrides) -> tuple[int, dict[str, int]]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = create_model(name, **overrides)
    parts = {
        part: sum(p.numel() for p in getattr(model, part).parameters()) for part in ("vision_encoder", "text_encoder")
    }
    return sum(p.numel() for p in model.parameters()), parts


def test_xvlm_base_has_exactly_the_official_parameter_count():
    # The official code builds 215,637,241 from Pretrain_XVLM_base_4m.yaml (Swin-B 224 + BERT-base 6/6).
    total, parts = count("xvlm_base")
    assert total == 215_637_241
    assert parts == {"vision_encoder": 86_743_224, "text_encoder": 126_057_018}


def test_the_384_preset_only_grows_the_swin_bias_tables():
    total, parts = count("xvlm_base_384")
    config = model_config("xvlm_base_384")
    assert (config.image_res, config.vision.window_size, config.num_patches_side) == (384, 12, 12)
    # 24 blocks' tables grow from 13^2 to 23^2 rows, one column per head: 2*4 + 2*8 + 18*16 + 2*32 = 376 columns.
    assert total - 215_637_241 == (23**2 - 13**2) * 376 == 135_360
    assert parts["text_encoder"] == 126_057_018


@pytest.mark.parametrize(
    "name, total",
    [
        ("xvlm_swin_t", 153_988_539),
        ("xvlm_deit_base", 212_267_841),
        ("xvlm_clip_base", 212_268_609),
        ("xvlm_tiny", 2_326_445),
    ],
)
def test_other_preset_sizes(name, total):
    assert count(name)[0] == total


def test_presets_are_registered_with_the_fusion_split_of_the_text_config():
    assert {"xvlm_base", "xvlm_base_384", "xvlm_tiny", "xvlm_deit_base", "xvlm_clip_base"} <= set(preset_names())
    config = model_config("xvlm_base")
    assert (config.text.num_layers, config.text.fusion_start_at) == (12, 6)
    assert family_of(config).name == "xvlm" and config.num_patches_side == 7 and config.vision.out_width == 1024


@pytest.mark.parametrize("encoder", ["deit", "clip_vit"])
def test_vit_encoders_give_cls_first_and_local_attention_regions(encoder):
    torch.manual_seed(0)
    model = create_model(
        "xvlm_tiny",
        image_res=32,
        vision={"encoder": encoder, "width": 32, "depth": 2, "num_heads": 2, "patch_size": 8, "local_attn_depth": 1},
    ).eval()
    image = torch.randn(2, 3, 32, 32)
    atts = torch.zeros(3, 17, dtype=torch.long)
    atts[:, 0] = 1
    atts[0, 1:] = 1  # region 0: the whole image
    atts[1, 1:3] = atts[2, 5:9] = 1
    with torch.no_grad():
        embeds, _ = model.get_vision_embeds(image)
        region, full = model.get_region_embeds(image, atts, torch.tensor([0, 0, 1]))
    assert embeds.shape == (2, 17, 32)
    torch.testing.assert_close(full, embeds[[0, 0, 1]])
    torch.testing.assert_close(region[0], embeds[0])  # a whole-image mask is the plain encoding
    assert not torch.allclose(region[1], embeds[0], atol=1e-3)  # local attention changes a region's tokens


def test_tasks_x_vlm_has_not_are_refused_with_the_reason():
    family = get_family("xvlm")
    assert set(family.tasks) == {"retrieval", "grounding", "grounding_weakly", "vqa", "nlvr2", "captioning"}
    with pytest.raises(ConfigError, match="reads images only"):
        family.task("video_qa")


def test_bad_configs_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="multiple of 32"):
        model_config("xvlm_base", image_res=200)
    with pytest.raises(ConfigError, match="not one of"):
        model_config("xvlm_base", vision={"encoder": "resnet"})
