"""``x2vlm import-official``: official X²-VLM, X-VLM, VLMo and CCLM checkpoints become our model folders.

End to end on the official fixtures (../shared/fixtures/*_official_tiny, made by running the
official code): import through the CLI, load the folder, and match the fixture's reference
outputs. The X²-VLM-based CCLM has no official fixture: its file is written here in the official
layout from a model of ours, and the folder must give that model's weights and outputs. Then the
refusals, each one line and exit 2, and the folder used as it is by ``finetune --pretrained`` and
``pretrain --init``.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import yaml

from x2vlm_core.cli import main
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, family_of
from x2vlm_core.families.cclm import official as cclm_official
from x2vlm_core.families.vlmo import official as vlmo_official
from x2vlm_core.families.x2vlm import official as x2vlm_official
from x2vlm_core.families.xvlm import official as xvlm_official
from x2vlm_core.release.model_folder import load_model_dir, tied_aliases
from x2vlm_core.release.official_files import OfficialFiles
from x2vlm_core.text.xlmr import build_multilingual_tokenizer, train_sentencepiece

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
X2VLM = FIXTURES / "x2vlm_official_tiny"
VLMO = FIXTURES / "vlmo_official_tiny"
XVLM = FIXTURES / "xvlm_official_tiny"
ATOL = 1e-4
SMALL = [
    "--set",
    "train.steps=2",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.log_every=1",
    "--set",
    "train.tensorboard=false",
    "--set",
    "train.shuffle_buffer=8",
]


def _fixture(folder: Path, checkpoint: str) -> Path:
    if not (folder / checkpoint).is_file():
        pytest.skip(f"official fixture not found at {folder} (../shared is absent)")
    return folder / checkpoint


@pytest.fixture
def x2vlm_ckpt() -> Path:
    return _fixture(X2VLM, "x2vlm_tiny.th")


@pytest.fixture
def vlmo_ckpt() -> Path:
    return _fixture(VLMO, "vlmo_tiny.ckpt")


@pytest.fixture
def xvlm_ckpt() -> Path:
    return _fixture(XVLM, "xvlm_tiny.th")


# An X²-VLM-based CCLM pre-training config, keys as configs/pretrain/multilingual_cclm_x2vlm_base.yaml
# (zengyan-97/X2-VLM) names them, at a tiny size: BEiT-2 base width with one block, 2 XLM-R layers
# (of the folder's 24), 2 cross layers of a BERT whose intermediate size differs from XLM-R's.
CCLM_X2VLM_CONFIG = {
    "use_beit_v2": True,
    "vision_config": "assets/config_beit2_base.json",
    "image_res": 32,
    "patch_size": 16,
    "vision_num_hidden_layers": 1,
    "local_attn_depth": -1,
    "model_type": "CrossViewLM",
    "text_encoder": "assets/tiny-xlm-roberta-base",
    "text_num_hidden_layers": 2,
    "cross_encoder": "assets/tiny-bert-base-uncased",
    "cross_num_hidden_layers": 2,
    "is_xvlm_ckpt": True,
    "xvlm_ckpt_text_num_hidden_layers": 12,
    "replace_text_encoder": True,
    "embed_dim": 16,
    "temp": 0.07,
    "max_tokens": 12,
}
XLMR_TINY = {
    "model_type": "xlm-roberta",
    "architectures": ["XLMRobertaForMaskedLM"],
    "hidden_size": 32,
    "num_hidden_layers": 24,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 40,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "output_past": True,
}
CROSS_BERT_TINY = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 12,
    "num_attention_heads": 2,
    "intermediate_size": 48,
    "layer_norm_eps": 1e-12,
    "vocab_size": 30522,
}


def _write_cclm_x2vlm_assets(folder: Path, cross: dict) -> int:
    """The files the config names; returns the XLM-R vocabulary size."""
    rng = random.Random(0)
    words = "a red blue green circle square left right of the large small rot blau kreis links".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 7))) for _ in range(200)]
    xlmr = train_sentencepiece(texts, folder / "assets/tiny-xlm-roberta-base", vocab_size=60)
    vocab = len(build_multilingual_tokenizer(str(xlmr)))
    (xlmr / "config.json").write_text(json.dumps({**XLMR_TINY, "vocab_size": vocab}))
    (folder / "assets/tiny-bert-base-uncased").mkdir(parents=True)
    (folder / "assets/tiny-bert-base-uncased/config.json").write_text(json.dumps(cross))
    (folder / "assets/config_beit2_base.json").write_text(json.dumps({"vision_width": 768, "patch_size": 16}))
    return vocab


@pytest.fixture(scope="module")
def cclm_x2vlm_official(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """``(checkpoint, source model)``: a model of ours saved as the official pre-training saves it."""
    folder = tmp_path_factory.mktemp("cclm_x2vlm_official")
    vocab = _write_cclm_x2vlm_assets(folder, CROSS_BERT_TINY)
    shape = {k: v for k, v in XLMR_TINY.items() if k not in ("model_type", "architectures", "output_past")}
    torch.manual_seed(0)
    source = create_model(
        "cclm_x2vlm_base",
        image_res=32,
        embed_dim=16,
        max_tokens=12,
        tokenizer=str(folder / "assets/tiny-xlm-roberta-base"),
        vision={"depth": 1},
        text_encoder={"arch": "xlm-roberta", "config": {**shape, "vocab_size": vocab, "num_hidden_layers": 2}},
        cross={"num_layers": 2, "num_heads": 2, "intermediate_size": 48},
    ).eval()
    with torch.no_grad():  # zero-initialised biases and LayerNorm affines must matter too
        for param in source.parameters():
            param.add_(0.05 * torch.randn_like(param))
    # XVLMPlusBase's state dict: a 0-dim temp and the position ids buffer older transformers saved.
    state = {key: value.clone() for key, value in source.state_dict().items()}
    state["temp"] = state["temp"].reshape(())
    state["text_encoder.embeddings.position_ids"] = torch.arange(XLMR_TINY["max_position_embeddings"])[None]
    torch.save({"model": state, "config": CCLM_X2VLM_CONFIG}, folder / "cclm_x2vlm_tiny.th")
    return folder / "cclm_x2vlm_tiny.th", source


def _cclm_outputs(model) -> dict[str, torch.Tensor]:
    """Every part of the model: image and text encoders, projections, ITM, box and MLM heads."""
    image = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ids = torch.tensor([[0, 5, 6, 7, 2, 1], [0, 8, 9, 2, 1, 1]])
    atts = (ids != 1).long()
    with torch.no_grad():
        image_embeds, image_atts = model.get_vision_embeds(image)
        text_embeds = model.get_text_embeds(ids, atts)
        return {
            "image_embeds": image_embeds,
            "text_embeds": text_embeds,
            "image_feat": model.get_image_feat(image_embeds),
            "text_feat": model.get_text_feat(text_embeds),
            "itm_logits": model.itm_logits(image_embeds, image_atts, text_embeds, atts),
            "bbox_pred": model.predict_bbox(image_embeds, text_embeds, atts),
            "mlm_logits": model.mlm_logits(ids, atts, torch.tensor([[1, 2], [1, 2]]), image_embeds, image_atts),
        }


def _import(capsys, checkpoint: Path, output: Path, *flags: str) -> tuple[list[str], dict]:
    assert main(["import-official", str(checkpoint), "--output", str(output), *flags]) == 0
    out = capsys.readouterr().out
    start = out.index("\n{\n") + 1  # the mapping lines, then the result as JSON
    return out[:start].splitlines(), json.loads(out[start:])


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _reference_diffs(model, fixture: Path) -> dict[str, float]:
    ref = torch.load(fixture / "reference_io.pt", weights_only=True)
    with torch.no_grad():
        ours = family_of(model).official.reference_outputs(model.eval(), ref["inputs"])
    assert set(ours) == set(ref["outputs"])
    return {name: (ours[name].float() - ref["outputs"][name].float()).abs().max().item() for name in ours}


def test_x2vlm_checkpoint_imports_and_its_folder_gives_the_official_outputs(x2vlm_ckpt, tmp_path, capsys):
    lines, result = _import(capsys, x2vlm_ckpt, tmp_path / "model")
    assert result["family"] == "x2vlm" and result["image_res"] == 48 and result["left_at_init"] == 0
    for expected in (
        "vision_num_hidden_layers = 1 -> vision.depth = 1",
        "text_num_hidden_layers = 3 -> text.num_layers = 3",
        "text_fusion_start_at = 2 -> text.fusion_start_at = 2",
        "assets/tiny-bert-base-uncased/config.json hidden_size = 32 -> text.hidden_size = 32",
        "embed_dim = 16 -> embed_dim = 16",
    ):
        assert any(line.strip() == expected for line in lines), (expected, lines)
    folder = tmp_path / "model"
    vocab = X2VLM / "assets/tiny-bert-base-uncased/vocab.txt"
    assert (folder / "tokenizer" / "vocab.txt").read_text() == vocab.read_text()
    diffs = _reference_diffs(load_model_dir(folder), X2VLM)
    assert len(diffs) == 25 and max(diffs.values()) <= ATOL, diffs


def test_vlmo_checkpoint_imports_and_its_folder_gives_the_official_outputs(vlmo_ckpt, tmp_path, capsys):
    lines, result = _import(capsys, vlmo_ckpt, tmp_path / "model")
    assert result["family"] == "vlmo" and result["parameters"] == 513_344
    for expected in (
        "weights: relative_position_bias_table = (422, 8) -> num_heads = 2",
        "max_text_len_of_initckpt = 196 -> text_rel_pos_len = 196",
        "loss_names = {'vqa': 1, 'nlvr2': 1} -> task_heads = ['vqa', 'nlvr2']",
        "vqav2_label_size = 10 -> vqa_answers = 10",
    ):
        assert any(line.strip() == expected for line in lines), (expected, lines)
    model = load_model_dir(tmp_path / "model")
    diffs = _reference_diffs(model, VLMO)
    assert len(diffs) == 40 and max(diffs.values()) <= ATOL, diffs


def test_xvlm_checkpoint_imports_and_its_folder_gives_the_official_outputs(xvlm_ckpt, tmp_path, capsys):
    lines, result = _import(capsys, xvlm_ckpt, tmp_path / "model")
    assert result["family"] == "xvlm" and result["parameters"] == 1_517_725 and result["left_at_init"] == 0
    for expected in (
        "assets/config_swin_toy_224.json (use_swin) = True -> vision.encoder = 'swin'",
        "assets/config_swin_toy_224.json num_heads = [2, 4, 8, 16] -> vision.stage_heads = [2, 4, 8, 16]",
        "assets/config_bert_toy.json fusion_layer = 2 -> text.fusion_start_at = 2",
        "assets/config_bert_toy.json num_hidden_layers = 4 -> text.num_layers = 4",
    ):
        assert any(line.strip() == expected for line in lines), (expected, lines)
    model = load_model_dir(tmp_path / "model")
    diffs = _reference_diffs(model, XVLM)
    assert len(diffs) == 25 and max(diffs.values()) <= ATOL, diffs


def test_an_xvlm_checkpoint_that_does_not_fit_its_text_config_is_refused_in_one_line(xvlm_ckpt, tmp_path, capsys):
    shutil.copytree(XVLM, tmp_path / "official")
    text_config = tmp_path / "official/assets/config_bert_toy.json"
    text_config.write_text(json.dumps({**json.loads(text_config.read_text()), "intermediate_size": 96}))
    err = _one_line_error(
        capsys, ["import-official", str(tmp_path / "official/xvlm_tiny.th"), "--output", str(tmp_path / "o")]
    )
    assert "does not fit the model its config describes" in err
    assert "text_encoder.bert.encoder.layer.0.intermediate.dense.weight: file (64, 32) vs model (96, 32)" in err
    assert not (tmp_path / "o").exists()


# Official fine-tuning models (models/model_retrieval.py, model_bbox.py): a BERT without the MLM
# head's wrapper, and only their task's heads; with the outputs those heads give.
XVLM_TASK_MODELS = {
    "retrieval": (
        ("text_encoder.cls.", "bbox_head."),
        ("image_feat", "text_feat", "temp", "itc_sim_i2t", "cross_pos", "itm_logits_pos", "itm_logits_neg"),
    ),
    "grounding": (
        ("text_encoder.cls.", "vision_proj.", "text_proj.", "temp", "itm_head."),
        ("image_embeds", "text_embeds", "cross_pos", "bbox_pred"),
    ),
}


def _xvlm_task_checkpoint(xvlm_ckpt: Path, folder: Path, name: str, drop: tuple[str, ...], **extra) -> Path:
    if not folder.exists():
        shutil.copytree(XVLM, folder)
    contents = torch.load(xvlm_ckpt, weights_only=True)
    state = {
        key.replace("text_encoder.bert.", "text_encoder."): value
        for key, value in contents["model"].items()
        if not key.startswith(drop)
    }
    torch.save({"model": {**state, **extra}, "config": contents["config"]}, folder / f"{name}.th")
    return folder / f"{name}.th"


@pytest.mark.parametrize("task", sorted(XVLM_TASK_MODELS))
def test_fine_tuned_xvlm_task_checkpoints_import_with_the_heads_they_lack_at_init(xvlm_ckpt, tmp_path, capsys, task):
    drop, outputs = XVLM_TASK_MODELS[task]
    checkpoint = _xvlm_task_checkpoint(xvlm_ckpt, tmp_path / "official", task, drop)
    lines, result = _import(capsys, checkpoint, tmp_path / "model")
    model = load_model_dir(tmp_path / "model")
    dropped = [k for k in torch.load(xvlm_ckpt, weights_only=True)["model"] if k.startswith(drop)]
    assert result["left_at_init"] == len(set(dropped) - tied_aliases(model))  # the MLM decoder is the word embedding
    assert any("are not in them -> those heads keep their initialisation" in line for line in lines), lines
    diffs = _reference_diffs(model, XVLM)
    assert max(diffs[name] for name in outputs) <= ATOL, diffs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"text_decoder.cls.predictions.bias": torch.zeros(64)}, "a fine-tuned VQA or captioning model"),
        ({"cls_head.0.weight": torch.zeros(64, 32)}, "a fine-tuned NLVR2 model"),
    ],
)
def test_fine_tuned_xvlm_models_of_other_shapes_are_refused_in_one_line(xvlm_ckpt, tmp_path, capsys, extra, message):
    checkpoint = _xvlm_task_checkpoint(xvlm_ckpt, tmp_path / "official", "task", ("text_encoder.cls.",), **extra)
    err = _one_line_error(capsys, ["import-official", str(checkpoint), "--output", str(tmp_path / "o")])
    assert message in err and "x2vlm finetune" in err, err


def test_x2vlm_based_cclm_checkpoint_imports_with_the_source_models_weights_and_outputs(
    cclm_x2vlm_official, tmp_path, capsys
):
    checkpoint, source = cclm_x2vlm_official
    lines, result = _import(capsys, checkpoint, tmp_path / "model")
    assert result["family"] == "cclm" and result["image_res"] == 32 and result["left_at_init"] == 0
    for expected in (
        "vision_num_hidden_layers = 1 -> vision.depth = 1",
        "assets/tiny-xlm-roberta-base/config.json model_type = 'xlm-roberta' -> text_encoder.arch = 'xlm-roberta'",
        "text_num_hidden_layers = 2 -> text_encoder.config.num_hidden_layers = 2",
        "assets/tiny-bert-base-uncased/config.json intermediate_size = 48 -> cross.intermediate_size = 48",
        "cross_num_hidden_layers = 2 -> cross.num_layers = 2",
    ):
        assert any(line.strip() == expected for line in lines), (expected, lines)
    loaded = load_model_dir(tmp_path / "model").eval()
    assert not loaded.config.one_stack and "output_past" not in loaded.config.text_encoder.config
    ours, theirs = loaded.state_dict(), source.state_dict()
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    expected, got = _cclm_outputs(source), _cclm_outputs(loaded)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-6, msg=name)
    assert (tmp_path / "model/tokenizer/sentencepiece.bpe.model").is_file()


def test_an_x2vlm_based_cclm_checkpoint_of_another_shape_is_refused_in_one_line(cclm_x2vlm_official, tmp_path, capsys):
    checkpoint, _ = cclm_x2vlm_official
    shutil.copy(checkpoint, tmp_path / checkpoint.name)
    _write_cclm_x2vlm_assets(tmp_path, {**CROSS_BERT_TINY, "intermediate_size": 64})
    err = _one_line_error(capsys, ["import-official", str(tmp_path / checkpoint.name), "--output", str(tmp_path / "o")])
    assert "does not fit the model its config describes" in err
    assert "cross_encoder.encoder.layer.0.intermediate.dense.weight: file (48, 32) vs model (64, 32)" in err
    assert not (tmp_path / "o").exists()


def test_import_at_another_image_size_resizes_as_the_official_loader(x2vlm_ckpt, tmp_path, capsys):
    lines, result = _import(capsys, x2vlm_ckpt, tmp_path / "model", "--image-res", "80")
    assert result["image_res"] == 80 and lines[-1].strip() == "--image-res = 80 -> image_res = 80"
    state = load_model_dir(tmp_path / "model").state_dict()
    expected = torch.load(Path(__file__).parent / "fixtures" / "official_rel_pos_resize.pt", weights_only=True)[
        "tiny_checkpoint_at_80"
    ]["tables"]
    for key, table in expected.items():
        torch.testing.assert_close(state[key], table, rtol=0, atol=1e-5)


def test_vlmo_at_another_image_size_keeps_the_text_rows(vlmo_ckpt, tmp_path, capsys):
    _import(capsys, vlmo_ckpt, tmp_path / "model", "--image-res", "64")
    model = load_model_dir(tmp_path / "model")
    source = torch.load(vlmo_ckpt, weights_only=True)["state_dict"]["relative_position_bias_table"]
    table = model.relative_position_bias_table.detach()
    assert model.config.image_res == 64 and table.shape == (7 * 7 + 3 + 2 * 196 + 2, 8)
    torch.testing.assert_close(table[-(2 * 196 + 2) :], source[-(2 * 196 + 2) :])  # text and cross rows as they were


# ---- refusals -------------------------------------------------------------------------------------


def test_a_pickle_that_needs_code_is_refused(tmp_path, capsys):
    torch.save({"model": OrderedDict(w=torch.zeros(1)), "config": {"when": Path("x")}}, tmp_path / "evil.th")
    err = _one_line_error(capsys, ["import-official", str(tmp_path / "evil.th"), "--output", str(tmp_path / "out")])
    assert "needs code execution" in err and not (tmp_path / "out").exists()


def test_a_checkpoint_in_no_known_layout_names_the_first_missing_and_unexpected_keys(x2vlm_ckpt, tmp_path, capsys):
    saved = torch.load(x2vlm_ckpt, weights_only=True)
    state = saved["model"]
    state["vision_encoder.extra_head.weight"] = torch.zeros(2)
    del state["itm_head.0.weight"], state["bbox_head.3.bias"]
    torch.save(saved, tmp_path / "x2vlm_tiny.th")
    shutil.copytree(X2VLM / "assets", tmp_path / "assets")
    err = _one_line_error(capsys, ["import-official", str(tmp_path / "x2vlm_tiny.th"), "--output", str(tmp_path / "o")])
    assert (
        "no known X²-VLM layout: 2 weights missing (first: bbox_head.3.bias), 1 unexpected "
        "(first: vision_encoder.extra_head.weight)" in err
    )


def test_files_the_config_names_that_are_not_there_name_the_flag_that_supplies_them(
    x2vlm_ckpt, vlmo_ckpt, tmp_path, capsys
):
    shutil.copy(x2vlm_ckpt, tmp_path / "x2vlm_tiny.th")  # without the assets/ folder beside it
    err = _one_line_error(capsys, ["import-official", str(tmp_path / "x2vlm_tiny.th"), "--output", str(tmp_path / "x")])
    assert "text_encoder 'assets/tiny-bert-base-uncased'" in err and "--text-encoder PATH" in err
    _import(
        capsys,
        tmp_path / "x2vlm_tiny.th",
        tmp_path / "x",
        "--text-encoder",
        str(X2VLM / "assets/tiny-bert-base-uncased"),
    )

    shutil.copy(vlmo_ckpt, tmp_path / "vlmo_tiny.ckpt")
    err = _one_line_error(
        capsys, ["import-official", str(tmp_path / "vlmo_tiny.ckpt"), "--output", str(tmp_path / "v")]
    )
    assert "tokenizer 'assets/tiny-bert-base-uncased'" in err and "--tokenizer PATH" in err
    err = _one_line_error(
        capsys,
        [
            "import-official",
            str(tmp_path / "vlmo_tiny.ckpt"),
            "--output",
            str(tmp_path / "v"),
            "--tokenizer",
            str(tmp_path / "nowhere"),
        ],
    )
    assert err.endswith(f"--tokenizer {tmp_path / 'nowhere'} does not exist")


def test_a_file_without_its_config_takes_the_official_yaml(x2vlm_ckpt, tmp_path, capsys):
    saved = torch.load(x2vlm_ckpt, weights_only=True)
    torch.save(saved["model"], tmp_path / "weights_only.th")
    err = _one_line_error(
        capsys, ["import-official", str(tmp_path / "weights_only.th"), "--output", str(tmp_path / "o")]
    )
    assert "holds no saved config" in err and "--config OFFICIAL_YAML" in err
    (tmp_path / "configs").mkdir()
    official = {**saved["config"], "text_encoder": str(X2VLM / "assets/tiny-bert-base-uncased")}
    (tmp_path / "configs" / "pretrain.yaml").write_text(yaml.safe_dump(official))
    lines, result = _import(
        capsys, tmp_path / "weights_only.th", tmp_path / "o", "--config", str(tmp_path / "configs" / "pretrain.yaml")
    )
    assert "--config" in lines[0] and result["left_at_init"] == 0


def test_a_config_of_no_known_family_and_a_used_output_are_refused(x2vlm_ckpt, tmp_path, capsys):
    saved = torch.load(x2vlm_ckpt, weights_only=True)
    torch.save({"model": saved["model"], "config": {"use_swin": True, "vision_config": "swin.json"}}, tmp_path / "s.th")
    err = _one_line_error(capsys, ["import-official", str(tmp_path / "s.th"), "--output", str(tmp_path / "o")])
    assert "recognised by no family" in err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    err = _one_line_error(capsys, ["import-official", str(x2vlm_ckpt), "--output", str(tmp_path / "used")])
    assert "not an empty folder" in err and (tmp_path / "used" / "keep.txt").exists()


# ---- the mappings on the released configs ------------------------------------------------------------


def test_released_x2vlm_configs_map_to_bert_and_beit2_sizes_without_their_files():
    """x2vlm_large_1b.yaml names data/bert-large-uncased-12l and configs/config_beit2_large.json."""
    official = {
        "use_beit_v2": True,
        "vision_config": "configs/config_beit2_large.json",
        "image_res": 224,
        "patch_size": 16,
        "local_attn_depth": -1,
        "text_encoder": "data/bert-large-uncased-12l",
        "text_num_hidden_layers": 18,
        "text_fusion_start_at": 12,
        "embed_dim": 256,
        "temp": 0.07,
        "max_tokens": 30,
        "frame_len": 3,
        "add_frame_pos": True,
        "video_encoding": "avgpool",
    }
    mapped = x2vlm_official.to_config(official, {}, OfficialFiles())
    assert mapped.config["vision"] == {"width": 1024, "depth": 24, "num_heads": 16, "patch_size": 16}
    text = mapped.config["text"]
    assert (
        text["hidden_size"],
        text["num_heads"],
        text["intermediate_size"],
        text["num_layers"],
        text["fusion_start_at"],
        text["vocab_size"],
    ) == (1024, 16, 4096, 18, 12, 30522)
    assert mapped.config["tokenizer"] == "builtin:bert-base-uncased" and mapped.config["frame_len"] == 3
    with pytest.raises(Exception, match="--text-encoder PATH"):
        x2vlm_official.to_config({**official, "text_encoder": "data/my-bert"}, {}, OfficialFiles())
    with pytest.raises(Exception, match="local_attn_depth 2"):
        x2vlm_official.to_config({**official, "local_attn_depth": 2}, {}, OfficialFiles())
    assert not x2vlm_official.recognises({**official, "cross_encoder": "data/bert-base-uncased"})  # CCLM's


def test_released_vlmo_configs_map_to_our_presets_and_their_heads():
    base = {
        "model_arch": "vlmo_base_patch16",
        "image_size": 480,
        "max_text_len": 40,
        "max_text_len_of_initckpt": 196,
        "vocab_size": 30522,
        "tokenizer": "bert-base-uncased",
        "vqav2_label_size": 3129,
        "drop_path_rate": 0.1,
        "loss_names": {"itm": 0, "itc": 0, "mlm": 0, "textmlm": 0, "vqa": 1, "nlvr2": 0, "irtr": 0},
    }
    vqa = vlmo_official.to_config(base, {}, OfficialFiles())
    assert {
        k: vqa.config[k]
        for k in ("width", "depth", "num_heads", "vlffn_start", "image_res", "task_heads", "vqa_answers", "tokenizer")
    } == {
        "width": 768,
        "depth": 12,
        "num_heads": 12,
        "vlffn_start": 10,
        "image_res": 480,
        "task_heads": ["vqa"],
        "vqa_answers": 3129,
        "tokenizer": "builtin:bert-base-uncased",
    }
    assert set(vqa.absent_prefixes) == {
        "mlm_score.",
        "itm_score.",
        "itc_text_proj.",
        "itc_image_proj.",
        "itc_vl_text_proj.",
        "itc_vl_image_proj.",
        "logit_scale",
        "logit_vl_scale",
    }
    text_stage = vlmo_official.to_config(
        {**base, "model_arch": "vlmo_large_patch16", "max_text_len": 196, "loss_names": {"textmlm": 1}},
        {},
        OfficialFiles(),
    )
    assert text_stage.config["vlffn_start"] == 24 and "mlm_score." not in text_stage.absent_prefixes
    plus = vlmo_official.to_config({**base, "model_arch": "vlmo_base_plus_patch16"}, {}, OfficialFiles())
    assert plus.config["relative_position"] is False and plus.config["layer_scale_init"] is None


XVLM_BASE_4M = {  # configs/Pretrain_XVLM_base_4m.yaml (zengyan-97/X-VLM), the model keys
    "use_clip_vit": False,
    "use_swin": True,
    "vision_config": "configs/config_swinB_224.json",
    "image_res": 224,
    "patch_size": 32,
    "use_roberta": False,
    "text_config": "configs/config_bert.json",
    "text_encoder": "data/bert-base-uncased",
    "embed_dim": 256,
    "temp": 0.07,
    "max_tokens": 40,
}


def test_released_xvlm_configs_map_to_swin_b_and_bert_base_without_their_files():
    mapped = xvlm_official.to_config(XVLM_BASE_4M, {}, OfficialFiles()).config
    assert mapped["vision"] == {
        "encoder": "swin",
        "embed_dim": 128,
        "depths": [2, 2, 18, 2],
        "stage_heads": [4, 8, 16, 32],
        "window_size": 7,
    }
    text = mapped["text"]
    assert (text["hidden_size"], text["num_layers"], text["fusion_start_at"], text["vocab_size"]) == (768, 12, 6, 30522)
    assert mapped["tokenizer"] == "builtin:bert-base-uncased"
    assert create_model("xvlm_base").config.vision.window_size == 7  # the preset the released model is
    fine_tuning = {**XVLM_BASE_4M, "vision_config": "configs/config_swinB_384.json", "image_res": 384}
    assert xvlm_official.to_config(fine_tuning, {}, OfficialFiles()).config["vision"]["window_size"] == 12
    deit = xvlm_official.to_config({**XVLM_BASE_4M, "use_swin": False, "patch_size": 16}, {}, OfficialFiles())
    assert deit.config["vision"] == {
        "encoder": "deit",
        "width": 768,
        "depth": 12,
        "num_heads": 12,
        "patch_size": 16,
        "local_attn_depth": 4,
        "drop_path_rate": 0.0,
    }
    clip = {**XVLM_BASE_4M, "use_clip_vit": True, "vision_config": "configs/config_clipvitB.json", "patch_size": 16}
    assert xvlm_official.to_config(clip, {}, OfficialFiles()).config["vision"] == {
        **deit.config["vision"],
        "encoder": "clip_vit",
    }
    with pytest.raises(ConfigError, match="use_roberta"):
        xvlm_official.to_config({**XVLM_BASE_4M, "use_roberta": True}, {}, OfficialFiles())
    with pytest.raises(ConfigError, match="--text-config PATH"):
        xvlm_official.to_config({**XVLM_BASE_4M, "text_config": "configs/my_bert.json"}, {}, OfficialFiles())


def test_each_released_config_is_claimed_by_exactly_its_family():
    from x2vlm_core.release.import_official import family_for

    cclm_x2vlm_base = {**CCLM_X2VLM_CONFIG, "cross_encoder": "data/bert-base-uncased"}
    cclm_original = {"use_swin": True, "text_encoder": "data/xlm-roberta-large", "text_num_hidden_layers": 12}
    x2vlm = {"use_beit_v2": True, "text_encoder": "data/bert-base-uncased"}
    xvlm_roberta = {**XVLM_BASE_4M, "use_roberta": True, "text_encoder": "data/roberta-base"}
    for config, family in (
        (XVLM_BASE_4M, "xvlm"),
        (xvlm_roberta, "xvlm"),  # refused by its mapping, with the reason, not taken for a CCLM
        (cclm_x2vlm_base, "cclm"),
        (cclm_original, "cclm"),
        (x2vlm, "x2vlm"),
    ):
        assert family_for(config, "x").name == family, config
    assert cclm_official.recognises(cclm_x2vlm_base) and not x2vlm_official.recognises(cclm_x2vlm_base)


def test_x2vlm_based_cclm_configs_name_their_folders_and_need_one_width(tmp_path):
    with pytest.raises(ConfigError, match="text_encoder 'assets/tiny-xlm-roberta-base'.*--text-encoder PATH"):
        cclm_official.to_config(CCLM_X2VLM_CONFIG, {}, OfficialFiles((tmp_path,)))
    _write_cclm_x2vlm_assets(tmp_path, CROSS_BERT_TINY)
    published = {**CCLM_X2VLM_CONFIG, "cross_encoder": "data/bert-base-uncased"}  # 768 wide, XLM-R here 32
    with pytest.raises(ConfigError, match="is 768 wide but the text encoder 32"):
        cclm_official.to_config(published, {}, OfficialFiles((tmp_path,)))
    with pytest.raises(ConfigError, match="--cross-encoder PATH"):
        cclm_official.to_config({**published, "cross_encoder": "data/my-bert"}, {}, OfficialFiles((tmp_path,)))
    with pytest.raises(ConfigError, match="use_beit_v2"):
        cclm_official.to_config({**CCLM_X2VLM_CONFIG, "use_beit_v2": False}, {}, OfficialFiles((tmp_path,)))


# ---- the folder, used as it is ---------------------------------------------------------------------


@pytest.mark.slow
def test_imported_folders_fine_tune_and_continue_pre_training_as_they_are(
    x2vlm_ckpt, vlmo_ckpt, tiny_shards, tmp_path, capsys
):
    _import(capsys, x2vlm_ckpt, tmp_path / "x2vlm")
    assert (
        main(
            [
                "finetune",
                "--task",
                "retrieval",
                "--pretrained",
                str(tmp_path / "x2vlm"),
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "retrieval"),
                *SMALL,
            ]
        )
        == 0
    )
    capsys.readouterr()
    tuned = load_model_dir(tmp_path / "retrieval")
    assert (tuned.config.vision.depth, tuned.config.text.hidden_size, tuned.config.image_res) == (1, 32, 48)

    _import(capsys, vlmo_ckpt, tmp_path / "vlmo")
    assert (
        main(
            [
                "pretrain",
                "--init",
                str(tmp_path / "vlmo"),
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "continued"),
                *SMALL,
            ]
        )
        == 0
    )
    continued = load_model_dir(tmp_path / "continued")
    assert (continued.config.width, continued.config.depth, continued.config.vocab_size) == (64, 4, 64)
    before = load_model_dir(tmp_path / "vlmo").state_dict()
    after = continued.state_dict()
    qkv = "transformer.blocks.0.attn.qkv.weight"
    assert not torch.equal(before[qkv], after[qkv])  # it trained
