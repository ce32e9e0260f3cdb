import pickle

import pytest
import torch

from x2vlm_core.errors import CheckpointError
from x2vlm_core.families import create_model
from x2vlm_core.release.model_folder import init_from, load_model_dir, load_state_file, save_model_dir
from x2vlm_core.text.wordpiece import build_tokenizer, pre_caption


def test_preset_parameter_counts_match_the_official_models():
    with torch.device("meta"):
        assert sum(p.numel() for p in create_model("x2vlm_base").parameters()) == 254_758_401
        assert sum(p.numel() for p in create_model("x2vlm_large").parameters()) == 592_949_057


def test_builtin_tokenizer_is_bert_base_uncased():
    tokenizer = build_tokenizer("builtin:bert-base-uncased")
    assert tokenizer("a red circle")["input_ids"] == [101, 1037, 2417, 4418, 102]
    assert pre_caption("A Red-Circle, on the LEFT!", 3) == "a red circle"


def test_video_frames_are_averaged_per_patch():
    model = create_model("x2vlm_tiny", frame_len=3).eval()
    frames = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        video, atts = model.get_vision_embeds(frames)
        per_frame = model.vision_encoder(frames.flatten(0, 1)).unflatten(0, (2, 3))
    expected = (per_frame + model.absolute_frame_pos_embed).mean(dim=1)
    torch.testing.assert_close(video, expected)
    assert atts.shape == video.shape[:2]


def test_model_folder_round_trip_keeps_tied_weights(tmp_path):
    model = create_model("x2vlm_tiny")
    save_model_dir(model, tmp_path / "m")
    loaded = load_model_dir(tmp_path / "m")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    decoder = loaded.text_encoder.cls.predictions.decoder.weight
    assert decoder is loaded.text_encoder.bert.embeddings.word_embeddings.weight


def test_checkpoint_of_another_shape_is_refused_with_the_key(tmp_path):
    model = create_model("x2vlm_tiny")
    save_model_dir(model, tmp_path / "m")
    other = create_model("x2vlm_tiny", embed_dim=16)
    with pytest.raises(CheckpointError, match=r"4 shape mismatches, first: (text|vision)_proj"):
        init_from(other, tmp_path / "m")


def test_absolute_position_embedding_follows_a_new_image_size(tmp_path):
    model = create_model("x2vlm_tiny")  # 64 px, 8x8 patches, with an absolute position embedding
    save_model_dir(model, tmp_path / "m")
    bigger = create_model("x2vlm_tiny", image_res=96)  # 12x12 patches
    assert init_from(bigger, tmp_path / "m") == []
    old, new = model.vision_encoder.pos_embed, bigger.vision_encoder.pos_embed
    assert new.shape == (1, 1 + 12 * 12, old.shape[2])
    torch.testing.assert_close(new[:, 0], old[:, 0])  # the CLS position is kept
    # A constant embedding stays constant when resampled: the patch grid is interpolated, not re-drawn.
    with torch.no_grad():
        model.vision_encoder.pos_embed[:, 1:] = 0.5
    save_model_dir(model, tmp_path / "flat")
    init_from(bigger, tmp_path / "flat")
    torch.testing.assert_close(bigger.vision_encoder.pos_embed[:, 1:], torch.full_like(new[:, 1:], 0.5))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_pickle_that_needs_code_execution_is_refused(tmp_path):
    path = tmp_path / "evil.th"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil.th"):
        load_state_file(path)


def test_missing_checkpoint_and_missing_model_folder(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_state_file(tmp_path / "nope.th")
    with pytest.raises(CheckpointError, match="not a model folder"):
        load_model_dir(tmp_path)


def test_unknown_and_missing_weights_are_named(tmp_path, caplog):
    model = create_model("x2vlm_tiny")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("itm_head.")}
    torch.save({"model": {**state, "vqa_head.weight": torch.zeros(2)}}, tmp_path / "extra.th")
    with pytest.raises(CheckpointError, match=r"1 weights this model lacks, e.g. \['vqa_head.weight'\]"):
        init_from(create_model("x2vlm_tiny"), tmp_path / "extra.th")
    torch.save({"model": state}, tmp_path / "partial.th")
    with caplog.at_level("WARNING"):
        left = init_from(create_model("x2vlm_tiny"), tmp_path / "partial.th")
    assert sorted(left) == [
        "itm_head.0.bias",
        "itm_head.0.weight",
        "itm_head.1.bias",
        "itm_head.1.weight",
        "itm_head.3.bias",
        "itm_head.3.weight",
    ]
    assert "itm_head.0.weight" in caplog.text
