"""Bad input to any stage ends in one clear line on stderr and exit status 2."""

import pytest

from x2vlm_core.cli import main


def _one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unknown_task(capsys, tiny_shards, tmp_path):
    err = _one_line_error(
        capsys,
        [
            "finetune",
            "--task",
            "captionz",
            "--pretrained",
            str(tmp_path),
            "--shards",
            str(tiny_shards),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert (
        "unknown task 'captionz'; available tasks: captioning, grounding, grounding_weakly, nlvr2, retrieval, " in err
    )


def test_missing_annotation_file(capsys, tmp_path):
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"sources:\n  - {{format: coco_captions, dataset: d, annotations: {tmp_path}/nope.json, images: {tmp_path}}}\n"
    )
    err = _one_line_error(capsys, ["prepare-data", "--sources", str(sources), "--output", str(tmp_path / "o")])
    assert "nope.json" in err


def test_config_key_that_does_not_exist(capsys, tiny_shards, tmp_path):
    err = _one_line_error(
        capsys,
        [
            "pretrain",
            "--shards",
            str(tiny_shards),
            "--output",
            str(tmp_path / "o"),
            "--model",
            "x2vlm_tiny",
            "--set",
            "train.learning_rate=0.1",
        ],
    )
    assert "unknown key(s) ['learning_rate'] in train; valid keys are:" in err


def test_shards_folder_without_index(capsys, tmp_path):
    err = _one_line_error(
        capsys, ["pretrain", "--shards", str(tmp_path), "--output", str(tmp_path / "o"), "--model", "x2vlm_tiny"]
    )
    assert "index.json does not exist; run prepare-data" in err


def test_publish_never_overwrites_a_release(capsys, tmp_path):
    from x2vlm_core.families import create_model
    from x2vlm_core.release.model_folder import save_model_dir

    save_model_dir(create_model("x2vlm_tiny"), tmp_path / "m")
    argv = ["publish", "--model", str(tmp_path / "m"), "--destination", str(tmp_path / "rel"), "--version", "v1"]
    assert main(argv) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, argv)
    assert "already exists; releases are immutable" in err
    assert (tmp_path / "rel" / "x2vlm" / "LATEST").read_text().strip() == "v1"


@pytest.mark.parametrize(
    "argv", [["evaluate", "--task", "retrieval", "--model", "/nonexistent", "--shards", "/x", "--output", "/tmp/o"]]
)
def test_missing_model_folder(capsys, argv):
    err = _one_line_error(capsys, argv)
    assert "index.json does not exist" in err or "not a model folder" in err
