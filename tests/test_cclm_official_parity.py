"""The original CCLM (``swin`` set) computes the official CCLM function on the official checkpoint layout.

The fixture (../shared/fixtures/cclm_official_tiny) was made by running the official CCLM code
(``CrossViewLM``: a four-stage Swin, XLM-R weights in a 6 text + 6 fusion BERT-style stack,
random weights); every one of its 48 reference outputs, of both the image-text and the
parallel-text streams, must match within 1e-4 in fp32, with the checkpoint loaded strictly.
"""

from pathlib import Path

import pytest
import torch

from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, get_family
from x2vlm_core.families.cclm.checkpoint import adapt_cclm_state
from x2vlm_core.families.cclm.parity import (
    CHECKPOINT,
    fixture_shape,
    max_abs_diffs,
    max_diff_per_group,
    official_tiny_model,
)
from x2vlm_core.families.xvlm.checkpoint import to_official
from x2vlm_core.release.model_folder import load_state_file, save_model_dir

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "cclm_official_tiny"
ATOL = 1e-4


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURE / CHECKPOINT).is_file():
        pytest.skip(f"official CCLM parity fixture not found at {FIXTURE} (../shared is absent)")
    return FIXTURE


@pytest.fixture(scope="module")
def model(fixture_dir):
    return official_tiny_model(fixture_dir)


@pytest.fixture(scope="module")
def reference(fixture_dir):
    return torch.load(fixture_dir / "reference_io.pt", weights_only=True)


def test_all_48_reference_outputs_of_both_streams_match_the_official_code(fixture_dir, model):
    diffs = max_abs_diffs(fixture_dir, model)
    assert len(diffs) == 48
    assert set(max_diff_per_group(diffs)) == {"image_text", "parallel_text", "forward_losses"}
    too_far = {name: diff for name, diff in diffs.items() if not diff <= ATOL}
    assert not too_far, f"outputs off by more than {ATOL}: {too_far}"


def test_the_official_layout_round_trips_with_every_key_and_buffer(fixture_dir, model):
    official = load_state_file(fixture_dir / CHECKPOINT)
    back = to_official(model)
    # The tied decoder weight is the word embedding matrix in both.
    assert len(official) == 368 and set(back) == set(official)
    for key, value in official.items():
        torch.testing.assert_close(back[key].reshape(value.shape), value, rtol=0, atol=0, msg=key)
    assert (
        model.text_encoder.cls.predictions.decoder.weight is model.text_encoder.bert.embeddings.word_embeddings.weight
    )


def test_another_text_fusion_split_does_not_load_the_checkpoint(fixture_dir):
    # 8 text + 4 fusion layers: the checkpoint's cross-attention of layers 6-7 has nowhere to go.
    shape = fixture_shape(fixture_dir)
    shape["text_encoder"]["config"]["num_hidden_layers"] = 8
    shape["cross"]["num_layers"] = 4
    other = create_model("cclm_base_swin", **shape)
    with pytest.raises(RuntimeError, match="crossattention"):
        other.load_state_dict(adapt_cclm_state(other, load_state_file(fixture_dir / CHECKPOINT)), strict=True)


def test_positions_count_from_zero_as_in_the_official_bert_code(model, reference):
    """XLM-R weights, BERT positions: RoBERTa's padding offset (ids from 2) would change every text output."""
    ids, atts = reference["inputs"]["text_ids"], reference["inputs"]["text_atts"]
    embeddings = model.text_encoder.bert.embeddings
    with torch.no_grad():
        ours = model.get_text_embeds(ids, atts)
        shifted = embeddings.position_ids.clone()
        embeddings.position_ids.add_(2)
        embeddings.position_ids.clamp_(max=embeddings.position_embeddings.num_embeddings - 1)
        try:
            roberta_style = model.get_text_embeds(ids, atts)
        finally:
            embeddings.position_ids.copy_(shifted)
    torch.testing.assert_close(ours, reference["outputs"]["text_embeds"], rtol=0, atol=ATOL)
    assert (roberta_style - reference["outputs"]["text_embeds"]).abs().max() > 1e-2


def test_cclm_base_swin_has_the_official_parameter_count():
    with torch.device("meta"):
        base = create_model("cclm_base_swin")
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(base) == 525_677_393
    assert count(base.vision_encoder) == 86_743_224 and count(base.text_encoder) == 434_190_482
    layers = base.text_encoder.bert.encoder.layer
    assert len(layers) == 12 and base.config.text.fusion_start_at == 6
    assert sum(count(layer) for layer in layers[:6]) == 75_577_344
    assert sum(count(layer) for layer in layers[6:]) == 100_780_032
    assert "Swin" in get_family("cclm").describe(base.config)


def test_the_fusion_layers_must_continue_the_text_stack_shape():
    with pytest.raises(ConfigError, match="cross.num_heads"):
        create_model("cclm_base_swin", cross={"num_heads": 8})


def test_the_retrieval_task_model_built_from_a_saved_folder_gives_the_official_features(model, reference, tmp_path):
    """Fine-tuning starts from a model folder; what it builds computes what the checkpoint does."""
    folder = save_model_dir(model, tmp_path / "cclm_official")
    retrieval = get_family("cclm").task("retrieval")
    task_model = retrieval.build_model(folder, tmp_path / "shards").eval()  # retrieval reads no shards
    inputs, expected = reference["inputs"], reference["outputs"]
    with torch.no_grad():
        image_embeds, image_atts = task_model.get_vision_embeds(inputs["image"])
        text_embeds = task_model.get_text_embeds(inputs["text_ids"], inputs["text_atts"])
        image_feat, text_feat = task_model.get_image_feat(image_embeds), task_model.get_text_feat(text_embeds)
        itm = task_model.itm_logits(image_embeds, image_atts, text_embeds, inputs["text_atts"])
        loss = retrieval.objective(
            task_model,
            {
                "image": inputs["image"],
                "text_ids": inputs["text_ids"],
                "text_atts": inputs["text_atts"],
                "idx": torch.arange(3),
            },
        )["itc"]
    for ours, name in (
        (image_embeds, "image_embeds"),
        (text_embeds, "text_embeds"),
        (image_feat, "image_feat"),
        (text_feat, "text_feat"),
        (itm, "itm_logits_pos"),
    ):
        torch.testing.assert_close(ours, expected[name], rtol=0, atol=ATOL, msg=name)
    # Distinct images: the retrieval ITC is the pre-training one.
    torch.testing.assert_close(loss, expected["fwd_loss_itc"], rtol=0, atol=ATOL)


def test_import_official_turns_the_checkpoint_into_a_folder_with_the_official_outputs(fixture_dir, tmp_path, capsys):
    from x2vlm_core.cli import main
    from x2vlm_core.release.model_folder import load_model_dir

    # The saved config names its assets relative to the checkpoint's folder, where they are found.
    assert main(["import-official", str(fixture_dir / CHECKPOINT), "--output", str(tmp_path / "model")]) == 0
    printed = capsys.readouterr().out
    assert "CCLM checkpoint" in printed and "text layers 0-5, fusion layers 6-11" in printed
    loaded = load_model_dir(tmp_path / "model").eval()
    assert loaded.config.one_stack and loaded.config.text.fusion_start_at == 6
    diffs = max_abs_diffs(fixture_dir, loaded)
    assert len(diffs) == 48 and max(diffs.values()) <= ATOL, diffs


def test_import_official_refuses_a_shared_projection(fixture_dir):
    from x2vlm_core.families.cclm import official
    from x2vlm_core.release.official_files import OfficialFiles

    saved = torch.load(fixture_dir / CHECKPOINT, weights_only=True)["config"]
    assert official.recognises(saved)
    assert not official.recognises({**saved, "text_encoder": "data/bert-base-uncased"})  # an X-VLM config
    with pytest.raises(ConfigError, match="use_one_cl_proj_only"):
        official.to_config({**saved, "use_one_cl_proj_only": True}, {}, OfficialFiles((fixture_dir,)))
