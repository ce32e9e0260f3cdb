"""``x2vlm import-official``: official X²-VLM and VLMo checkpoints become our model folders.

End to end on the official fixtures (../shared/fixtures/*_official_tiny, made by running the
official code): import through the CLI, load the folder, and match the fixture's reference
outputs; then the refusals, each one line and exit 2, and the folder used as it is by
``finetune --pretrained`` and ``pretrain --init``.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import yaml

from x2vlm_core.cli import main
from x2vlm_core.families import family_of
from x2vlm_core.families.vlmo import official as vlmo_official
from x2vlm_core.families.x2vlm import official as x2vlm_official
from x2vlm_core.release.model_folder import load_model_dir
from x2vlm_core.release.official_files import OfficialFiles

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
X2VLM = FIXTURES / "x2vlm_official_tiny"
VLMO = FIXTURES / "vlmo_official_tiny"
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
