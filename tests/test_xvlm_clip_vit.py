"""X-VLM's CLIP-ViT encoder against the official one, and official CLIP-ViT X-VLM checkpoints through import-official.

``tests/fixtures/official_clip_vit.pt`` holds a tiny official ``CLIPVisionTransformer`` (X-VLM's
``models/clip_vit.py``, run unchanged; see the README beside it): its state dict as the official
model saves it, an image batch, and its outputs, whole and with region-local attention.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from x2vlm_core.cli import main
from x2vlm_core.errors import CheckpointError
from x2vlm_core.families import create_model
from x2vlm_core.families.xvlm.checkpoint import adapt_checkpoint, to_official
from x2vlm_core.families.xvlm.clip_layout import clip_from_official, clip_to_official
from x2vlm_core.families.xvlm.parity import FIXTURE_SHAPE
from x2vlm_core.release.model_folder import load_model_dir

REFERENCE = torch.load(Path(__file__).parent / "fixtures" / "official_clip_vit.pt", weights_only=True)
SHAPE = REFERENCE["shape"]
TOY_TEXT = Path(__file__).resolve().parents[1].parent / "shared/fixtures/xvlm_official_tiny/assets"
ATOL = 1e-5
# The official CLIP-ViT config JSON (configs/config_clipvitB.json) for the fixture's shape.
CLIP_JSON = {
    "vision_width": SHAPE["hidden_size"],
    "patch_size": SHAPE["patch_size"],
    "hidden_act": SHAPE["hidden_act"],
    "num_attention_heads": SHAPE["num_attention_heads"],
    "attention_dropout": 0.0,
    "intermediate_size": SHAPE["intermediate_size"],
    "num_hidden_layers": SHAPE["num_hidden_layers"],
    "local_attn_depth": SHAPE["local_attn_depth"],
}


def _model():
    """The fixture's encoder below the toy BERT of ``xvlm_official_tiny`` (its ``config_bert_toy.json``)."""
    vision = {
        "encoder": "clip_vit",
        "width": SHAPE["hidden_size"],
        "depth": SHAPE["num_hidden_layers"],
        "num_heads": SHAPE["num_attention_heads"],
        "patch_size": SHAPE["patch_size"],
        "local_attn_depth": SHAPE["local_attn_depth"],
        "drop_path_rate": 0.0,
    }
    return create_model("xvlm_tiny", image_res=SHAPE["image_size"], vision=vision, text=FIXTURE_SHAPE["text"]).eval()


def _with_official_vision(model) -> None:
    state = {**model.state_dict(), **REFERENCE["state"]}
    state = {k: v for k, v in state.items() if not k.startswith("vision_encoder.") or k in REFERENCE["state"]}
    model.load_state_dict(adapt_checkpoint(model, state), strict=True)


def _assert_official_outputs(model) -> None:
    idx, atts = REFERENCE["idx_to_group_img"], REFERENCE["image_atts"]
    with torch.no_grad():
        embeds, _ = model.get_vision_embeds(REFERENCE["image"])
        region, full = model.get_region_embeds(REFERENCE["image"], atts, idx)
    assert (embeds - REFERENCE["image_embeds"]).abs().max().item() <= ATOL
    assert (region - REFERENCE["region_embeds"]).abs().max().item() <= ATOL
    assert (full - REFERENCE["full_embeds"][idx]).abs().max().item() <= ATOL


def test_the_official_clip_vit_weights_give_the_official_outputs_whole_and_per_region():
    model = _model()
    _with_official_vision(model)
    _assert_official_outputs(model)


def test_the_layout_goes_back_to_the_official_names_unchanged():
    back = clip_to_official(clip_from_official(REFERENCE["state"]))
    assert back.keys() == REFERENCE["state"].keys()
    for key, value in REFERENCE["state"].items():
        assert torch.equal(back[key], value), key


def test_a_checkpoint_missing_one_projection_is_refused_by_name():
    state = dict(REFERENCE["state"])
    del state["vision_encoder.encoder.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(CheckpointError, match=r"layers\.1\.self_attn\.k_proj\.bias is missing"):
        clip_from_official(state)


def _official_checkpoint(folder: Path, **clip_json) -> Path:
    """An official-format CLIP-ViT X-VLM file: the fixture's encoder in a tiny model, saved as the official code saves."""
    if not (TOY_TEXT / "config_bert_toy.json").is_file():
        pytest.skip(f"official fixture assets not found at {TOY_TEXT} (../shared is absent)")
    model = _model()
    _with_official_vision(model)
    folder.mkdir()
    (folder / "config_clip_toy.json").write_text(json.dumps({**CLIP_JSON, **clip_json}))
    config = {
        "use_clip_vit": True,
        "use_swin": False,
        "vision_config": str(folder / "config_clip_toy.json"),
        "image_res": SHAPE["image_size"],
        "patch_size": SHAPE["patch_size"],
        "use_roberta": False,
        "text_config": str(TOY_TEXT / "config_bert_toy.json"),
        "text_encoder": str(TOY_TEXT / "tiny-bert-base-uncased"),
        "embed_dim": model.config.embed_dim,
        "temp": 0.07,
        "max_tokens": 12,
    }
    state = to_official(model)
    assert "vision_encoder.encoder.layers.0.self_attn.q_proj.weight" in state
    torch.save({"model": state, "config": config}, folder / "xvlm_clip.th")
    return folder / "xvlm_clip.th"


def test_an_official_clip_vit_checkpoint_imports_and_gives_the_official_outputs(tmp_path, capsys):
    checkpoint = _official_checkpoint(tmp_path / "official")
    assert main(["import-official", str(checkpoint), "--output", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert "config_clip_toy.json (use_clip_vit) = True -> vision.encoder = 'clip_vit'" in out
    assert "config_clip_toy.json local_attn_depth = 2 -> vision.local_attn_depth = 2" in out
    model = load_model_dir(tmp_path / "model").eval()
    _assert_official_outputs(model)
    for key, value in to_official(model).items():  # and the file round-trips exactly
        assert torch.equal(value, torch.load(checkpoint, weights_only=True)["model"][key]), key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not CLIP's quick_gelu"),
        ({"intermediate_size": 96}, "intermediate_size 96 is not 4 x vision_width 32"),
        ({"patch_size": 4}, "patch_size 8 disagrees with"),
    ],
)
def test_clip_configs_this_encoder_cannot_build_are_refused_in_one_line(tmp_path, capsys, change, message):
    checkpoint = _official_checkpoint(tmp_path / "official", **change)
    assert main(["import-official", str(checkpoint), "--output", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "model").exists()


def test_a_vision_config_that_is_not_json_or_lacks_a_field_is_refused_in_one_line(tmp_path, capsys):
    checkpoint = _official_checkpoint(tmp_path / "official")
    config = tmp_path / "official" / "config_clip_toy.json"
    for text, message in (
        ("vision_width: 32", "is not JSON"),
        (json.dumps({k: v for k, v in CLIP_JSON.items() if k != "local_attn_depth"}), "lacks local_attn_depth"),
    ):
        config.write_text(text)
        assert main(["import-official", str(checkpoint), "--output", str(tmp_path / "model")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "--vision-config PATH" in err, err
        assert not (tmp_path / "model").exists()
