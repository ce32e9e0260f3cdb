"""Our VLMo computes the same function as the official VLMo code, on the official checkpoint layout.

The fixture (../shared/fixtures/vlmo_official_tiny, described in its README) was made by running
microsoft/unilm's ``vlmo`` LightningModule in fp32 on random, perturbed weights. Its checkpoint is
loaded here by the model-folder loader (``init_from``: ``load_state_file`` + ``adapt_official_state``),
strictly, into the config its own ``hyper_parameters.config`` maps to; every one of the 40 reference
outputs must then match within 1e-4. (tests/test_import_official.py checks the same outputs through
``import-official``.) Then the quirks one by one: padding, perturbed weights, the fine-tuning path.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from x2vlm_core.families import create_model, get_family
from x2vlm_core.families.vlmo import official, tasks
from x2vlm_core.families.vlmo.checkpoint import adapt_official_state
from x2vlm_core.families.vlmo.config import VLMoConfig
from x2vlm_core.families.vlmo.model import VLMo, backbone_parameter_count
from x2vlm_core.families.vlmo.reference_outputs import reference_outputs
from x2vlm_core.release.model_folder import init_from, load_state_file, save_model_dir
from x2vlm_core.release.official_files import OfficialFiles

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "vlmo_official_tiny"
CHECKPOINT = FIXTURE / "vlmo_tiny.ckpt"
ATOL = 1e-4
# The texts the fixture's token ids were made from (the third is cut at max_text_len = 8).
CAPTIONS = ["a man on a bench", "red cars", "a dog with a blue hat in the park"]
NUM_OUTPUTS = 40


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, torch.Tensor]]:
    if not CHECKPOINT.is_file():
        pytest.skip(f"official VLMo parity fixture not found at {FIXTURE} (../shared is absent)")
    return torch.load(FIXTURE / "reference_io.pt", weights_only=True)


def fixture_config() -> VLMoConfig:
    """The checkpoint's own ``hyper_parameters.config``, mapped as ``import-official`` maps it."""
    contents = torch.load(CHECKPOINT, weights_only=True)
    mapping = official.to_config(
        contents["hyper_parameters"]["config"], contents["state_dict"], OfficialFiles((FIXTURE,))
    )  # the tokenizer folder is named relative to the fixture
    return get_family("vlmo").build_config({"name": "vlmo_official_tiny", **mapping.config}, str(CHECKPOINT))


def official_model() -> VLMo:
    """The model-folder loader's path: ``init_from`` reads the Lightning file, the family adapts it."""
    model = create_model(fixture_config()).eval()
    assert init_from(model, CHECKPOINT) == []  # nothing left at its initialisation
    return model


def max_abs_diffs(model: VLMo, reference: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    with torch.no_grad():
        ours = reference_outputs(model.eval(), reference["inputs"])
    expected = reference["outputs"]
    assert set(ours) == set(expected)
    diffs = {}
    for name, want in expected.items():
        got = ours[name]
        assert got.shape == want.shape, f"{name}: {tuple(got.shape)} vs {tuple(want.shape)}"
        diffs[name] = (got.double() - want.double()).abs().max().item()
    return diffs


def test_the_config_comes_from_the_checkpoint_and_the_weights_load_strictly(reference):
    config = fixture_config()
    assert (config.image_res, config.patch_size, config.width, config.depth, config.num_heads) == (48, 16, 64, 4, 2)
    assert (config.vlffn_start, config.max_tokens, config.text_rel_pos_len, config.vocab_size) == (2, 8, 196, 64)
    assert config.task_heads == ["vqa", "nlvr2"] and config.vqa_answers == 10
    model = create_model(config)
    state = load_state_file(CHECKPOINT)  # the Lightning wrapper: ckpt["state_dict"]
    assert len(state) == 137
    adapted = adapt_official_state(model, state)
    assert set(adapted) == set(model.state_dict())  # no key missing, none unexpected
    assert all(adapted[key].shape == value.shape for key, value in model.state_dict().items())
    assert init_from(model, CHECKPOINT) == []


def official_training_config(arch: str, **changes) -> dict:
    """The keys of an official config that shape the model (defaults of the official config.py)."""
    return {
        "model_arch": arch,
        "image_size": 224,
        "max_text_len": 40,
        "max_text_len_of_initckpt": 196,
        "vocab_size": 30522,
        "tokenizer": "bert-base-uncased",
        "drop_path_rate": 0.1,
        "vqav2_label_size": 3129,
        "loss_names": {"itm": 1, "itc": 1, "mlm": 1, "textmlm": 0, "vqa": 0, "nlvr2": 0, "irtr": 0},
        **changes,
    }


# Backbone sizes the official code builds from its real configs (the fixture README's figures).
@pytest.mark.parametrize(
    "official_config,backbone",
    [
        (official_training_config("vlmo_base_patch16"), 175_430_496),
        (official_training_config("vlmo_base_plus_patch16"), 166_567_360),
        (official_training_config("vlmo_large_patch16"), 561_544_448),
        (official_training_config("vlmo_base_patch16", image_size=480, loss_names={"vqa": 1}), 175_826_784),
        (official_training_config("vlmo_base_patch16", image_size=384, loss_names={"nlvr2": 1}), 175_644_384),
        (official_training_config("vlmo_base_patch16", max_text_len=196, loss_names={"textmlm": 1}), 166_102_368),
    ],
    ids=["base", "base_plus", "large", "vqa_480", "nlvr2_384", "text_stage"],
)
def test_official_configs_build_the_official_sizes(official_config, backbone):
    config = get_family("vlmo").build_config(official.to_config(official_config, {}, OfficialFiles()).config, "test")
    assert config.tokenizer == "builtin:bert-base-uncased"
    with torch.device("meta"):
        model = create_model(config)
    assert backbone_parameter_count(model) == backbone
    if official_config["loss_names"].get("textmlm"):
        assert not any(".mlp_vl." in name for name in model.state_dict())


def test_the_tokenizer_gives_the_fixture_token_ids(reference):
    model = official_model()
    ids, atts, _ = get_family("vlmo").text_encoder(model.config, None)(CAPTIONS)
    torch.testing.assert_close(ids, reference["inputs"]["text_ids"], rtol=0, atol=0)
    torch.testing.assert_close(atts, reference["inputs"]["text_masks"], rtol=0, atol=0)


def test_all_40_reference_outputs_match_the_official_code(reference):
    diffs = max_abs_diffs(official_model(), reference)
    assert len(diffs) == NUM_OUTPUTS
    too_far = {name: diff for name, diff in diffs.items() if not diff <= ATOL}
    assert not too_far, f"outputs off by more than {ATOL}: {too_far}"


def test_a_text_padded_only_to_its_own_length_gives_the_official_outputs(reference):
    """The official code pads every text to max_text_len and splits the lower fused layers there; our
    batches are padded to their longest text and split at that length. Pad keys are masked and a text
    offset's bias row does not depend on the length, so every real token and every image token agrees."""
    model, inputs, expected = official_model(), reference["inputs"], reference["outputs"]
    sample, length = 1, int(inputs["text_masks"][1].sum())  # "red cars": 5 tokens of 8
    assert length < model.config.max_tokens
    text_ids, masks = (
        inputs["text_ids"][sample : sample + 1, :length],
        inputs["text_masks"][sample : sample + 1, :length],
    )
    with torch.no_grad():
        img, txt = model.embed_image(inputs["image"][sample : sample + 1]), model.embed_text(text_ids)
        fused = model.fuse(img, torch.ones(img.shape[:2], dtype=masks.dtype), txt, masks)
        text_top, _ = model.encode_text(txt, masks)
    torch.testing.assert_close(fused[0, :length], expected["vl_text_feats"][sample, :length], rtol=0, atol=ATOL)
    torch.testing.assert_close(fused[0, length:], expected["vl_image_feats"][sample], rtol=0, atol=ATOL)
    torch.testing.assert_close(text_top[0], expected["text_feats"][sample, :length], rtol=0, atol=ATOL)


# One tensor per quirk the fixture pins down, and outputs it must move past the tolerance.
PERTURBED = {
    "relative_position_bias_table[text rows]": ("text_feats", "vl_text_feats"),
    "relative_position_bias_table[cross rows]": ("vl_text_feats", "vl_image_feats"),
    "transformer.blocks.1.mlp_text.fc2.weight": ("text_feats", "vl_text_feats"),
    "transformer.blocks.3.mlp_vl.fc2.weight": ("image_vlffn_feats", "vl_image_feats", "vqa_logits"),
    "mlm_score.decoder.weight": ("mlm_logits", "textmlm_logits"),
    "token_type_embeddings.weight[2]": ("nlvr2_cls_feats", "nlvr2_logits"),
    "logit_vl_scale": ("itc_logit_vl_scale", "itc_vl_i2t_logits", "itc_loss"),
}


@pytest.mark.parametrize("name", sorted(PERTURBED))
def test_a_perturbed_weight_fails_the_comparison(reference, name):
    model = official_model()
    params = dict(model.named_parameters())
    torch.manual_seed(0)
    with torch.no_grad():
        if name.startswith("relative_position_bias_table"):
            grid_rows = (2 * model.config.num_patches_side - 1) ** 2 + 3
            rows = slice(grid_rows, grid_rows + 2) if "cross" in name else slice(grid_rows + 2, None)
            table = model.relative_position_bias_table
            table[rows] += torch.randn_like(table[rows])
        elif name == "token_type_embeddings.weight[2]":
            model.token_type_embeddings.weight[2] += torch.randn(model.config.width)
        else:
            params[name] += 0.5 * torch.randn_like(params[name])
    diffs = max_abs_diffs(model, reference)
    assert all(diffs[output] > ATOL for output in PERTURBED[name]), {o: diffs[o] for o in PERTURBED[name]}
    if name == "token_type_embeddings.weight[2]":  # row 2 is the second NLVR2 image's alone
        assert all(diff <= ATOL for output, diff in diffs.items() if not output.startswith("nlvr2_"))


def test_task_models_built_from_the_checkpoint_give_the_official_features(reference, tmp_path):
    """Fine-tuning starts from a model folder; what it builds computes what the checkpoint does."""
    folder = save_model_dir(official_model(), tmp_path / "vlmo_official")
    inputs, expected = reference["inputs"], reference["outputs"]
    image, text_ids, masks = inputs["image"], inputs["text_ids"], inputs["text_masks"]

    retrieval = get_family("vlmo").task("retrieval")
    model = retrieval.build_model(folder, tmp_path / "shards").eval()  # retrieval reads no shards
    with torch.no_grad():
        image_feat, _ = model.image_features(model.embed_image(image))
        text_feat, _ = model.text_features(model.embed_text(text_ids), masks)
        loss = retrieval.objective(model, {"image": image, "text_ids": text_ids, "text_atts": masks})["itc"]
    torch.testing.assert_close(image_feat, expected["image_cls_feats"], rtol=0, atol=ATOL)
    torch.testing.assert_close(text_feat, expected["text_cls_feats"], rtol=0, atol=ATOL)
    # Official retrieval fine-tuning: the CLIP loss of the V-FFN / L-FFN logits alone.
    logits, labels = expected["itc_i2t_logits"], torch.arange(3)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(loss, clip, rtol=0, atol=ATOL)

    for head, output, run in (
        ("vqa", "vqa_logits", lambda m: m.vqa_logits(m.embed_image(image), m.embed_text(text_ids), masks)),
        ("nlvr2", "nlvr2_logits", lambda m: m.nlvr2_logits(image, inputs["image_1"], text_ids, masks)),
    ):
        model = tasks.build_model(folder, head).eval()
        with torch.no_grad():
            torch.testing.assert_close(run(model), expected[output], rtol=0, atol=ATOL)
