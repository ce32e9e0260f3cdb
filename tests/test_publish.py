"""Publishing to a local folder, sharded weights, and reading releases back (fetch, verify, load)."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import torch

from x2vlm_core.cli import main
from x2vlm_core.errors import CheckpointError, ReleaseError
from x2vlm_core.families import create_model
from x2vlm_core.release.fetch import fetch_release, load_release, read_manifest, verify_release
from x2vlm_core.release.model_folder import save_model_dir
from x2vlm_core.release.publish import publish_release
from x2vlm_core.release.sharded_weights import WEIGHTS_INDEX, load_weights, tensor_sizes, write_weights

MB = 1024 * 1024
METRICS = {"retrieval": {"txt_r1": 0.5, "img_r1": 0.25}, "grounding": {"val_acc": 0.75, "val_count": 12}}


def model_outputs(model) -> dict[str, torch.Tensor]:
    """Every head's output on one fixed input, to compare two models bit for bit."""
    generator = torch.Generator().manual_seed(0)
    res = model.config.image_res
    image = torch.rand(2, 3, res, res, generator=generator)
    ids = torch.randint(1000, 2000, (2, 8), generator=generator)
    atts = torch.ones_like(ids)
    model.eval()
    with torch.no_grad():
        image_embeds, image_atts = model.get_vision_embeds(image)
        text_embeds = model.get_text_embeds(ids, atts)
        return {
            "image_feat": model.get_image_feat(image_embeds),
            "text_feat": model.get_text_feat(text_embeds),
            "itm": model.itm_logits(image_embeds, image_atts, text_embeds, atts),
            "bbox": model.predict_bbox(image_embeds, text_embeds, atts),
        }


def assert_same_outputs(a, b) -> None:
    outputs_a, outputs_b = model_outputs(a), model_outputs(b)
    for name, value in outputs_a.items():
        assert torch.equal(value, outputs_b[name]), name


def save_tiny_model(folder: Path):
    """A tiny model (about 9 MB of float32 weights) saved with a training summary; returns it."""
    torch.manual_seed(1)
    model = create_model("x2vlm_tiny").eval()
    save_model_dir(
        model, folder, extra={"steps": 7, "world_size": 1, "final": {"loss": 2.5}, "train_config": {"batch_size": 4}}
    )
    return model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "pretrained"
    return save_tiny_model(folder), folder


def test_weights_split_into_shards_and_load_back(tiny_model, tmp_path):
    model, folder = tiny_model
    source = folder / "model.safetensors"
    limit = MB // 2  # the 7.8 MB word embeddings exceed it alone; the other 1.4 MB fill three more shards
    names = write_weights(source, tmp_path, max_shard_bytes=limit)
    shards = [n for n in names if n != WEIGHTS_INDEX]
    assert names[-1] == WEIGHTS_INDEX and len(shards) >= 4 and not (tmp_path / "model.safetensors").exists()
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    sizes = tensor_sizes(source)
    index = json.loads((tmp_path / WEIGHTS_INDEX).read_text())
    assert index["metadata"]["total_size"] == sum(sizes.values()) and set(index["weight_map"]) == set(sizes)
    for shard in shards:  # each shard stays under the limit unless one tensor alone is larger
        held = [k for k, v in index["weight_map"].items() if v == shard]
        assert sum(sizes[k] for k in held) <= limit or len(held) == 1
    state = load_weights(tmp_path)
    original = load_weights(folder)
    assert state.keys() == original.keys() and all(torch.equal(state[k], original[k]) for k in state)
    # Under the limit the file is copied whole.
    whole = tmp_path / "whole"
    whole.mkdir()
    assert write_weights(source, whole, max_shard_bytes=64 * MB) == ["model.safetensors"]


def test_a_tensor_larger_than_the_limit_gets_its_own_shard(tiny_model, tmp_path):
    _, folder = tiny_model
    sizes = tensor_sizes(folder / "model.safetensors")
    biggest = max(sizes, key=sizes.get)
    write_weights(folder / "model.safetensors", tmp_path, max_shard_bytes=sizes[biggest] - 1)
    weight_map = json.loads((tmp_path / WEIGHTS_INDEX).read_text())["weight_map"]
    assert [k for k, v in weight_map.items() if v == weight_map[biggest]] == [biggest]


def test_broken_shard_sets_are_refused(tiny_model, tmp_path):
    _, folder = tiny_model
    second = write_weights(folder / "model.safetensors", tmp_path, max_shard_bytes=MB)[1]
    (tmp_path / second).unlink()
    with pytest.raises(CheckpointError, match=f"names shard '{second}', which is not a file"):
        load_weights(tmp_path)
    with pytest.raises(CheckpointError, match="neither model.safetensors nor"):
        load_weights(tmp_path / "nothing-here")


def test_local_release_holds_everything_and_round_trips(tiny_model, tmp_path):
    model, folder = tiny_model
    where = publish_release(
        folder,
        str(tmp_path / "rel"),
        "x2vlm-tiny",
        metrics=METRICS,
        lineage={"pipeline_run": {"name": "run-1"}},
        version="v1",
        max_shard_bytes=4 * MB,
    )
    assert where == str(tmp_path / "rel" / "x2vlm-tiny" / "v1")
    manifest = verify_release(where)
    names = {entry["path"] for entry in manifest["files"]}
    assert {
        "config.yaml",
        "tokenizer/vocab.txt",
        "metrics.json",
        "lineage.json",
        "MODEL_CARD.md",
        "training.json",
        WEIGHTS_INDEX,
    } <= names
    assert any(re.fullmatch(r"model-00001-of-0000[2-9]\.safetensors", name) for name in names)
    assert manifest["weights"] == WEIGHTS_INDEX and "manifest.json" not in names
    assert (tmp_path / "rel" / "x2vlm-tiny" / "LATEST").read_text() == "v1\n"
    assert sorted(p.name for p in (tmp_path / "rel" / "x2vlm-tiny").iterdir()) == ["LATEST", "v1"]  # no staging left

    lineage = json.loads(Path(where, "lineage.json").read_text())
    assert lineage["pipeline_run"] == {"name": "run-1"}
    assert lineage["code"]["commit"] and set(lineage["model_files"]) == {
        "model.safetensors",
        "config.yaml",
        "training.json",
    }
    card = Path(where, "MODEL_CARD.md").read_text()
    for needle in (
        "## What it is",
        "## Data it saw",
        "## Intended use",
        "## Limits",
        "### retrieval",
        "| txt_r1 | 0.5000 |",
        "### grounding",
        "| val_count | 12 |",
        "Training: 7 steps",
    ):
        assert needle in card, needle

    fetched = fetch_release(tmp_path / "rel" / "x2vlm-tiny", tmp_path / "fetched")  # follows LATEST
    assert read_manifest(fetched) == manifest
    assert_same_outputs(model, load_release(fetched))


def test_training_data_from_the_shards_index_reaches_lineage_and_card(tiny_model, tiny_shards, tmp_path, capsys):
    _, folder = tiny_model
    assert (
        main(
            [
                "publish",
                "--model",
                str(folder),
                "--destination",
                str(tmp_path),
                "--name",
                "m",
                "--version",
                "v1",
                "--shards",
                str(tiny_shards),
            ]
        )
        == 0
    )
    lineage = json.loads((tmp_path / "m" / "v1" / "lineage.json").read_text())
    data = lineage["training_data"]
    assert data["uri"] == str(tiny_shards) and len(data["index_sha256"]) == 64
    assert data["splits"]["pretrain_image_text/train"]["samples"] > 0
    card = (tmp_path / "m" / "v1" / "MODEL_CARD.md").read_text()
    assert "| pretrain_image_text/train |" in card and data["index_sha256"] in card


def test_existing_versions_and_bad_names_are_refused(tiny_model, tmp_path):
    _, folder = tiny_model
    publish_release(folder, str(tmp_path), "m", version="v1")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "m" / "v1").rglob("*"))
    with pytest.raises(ReleaseError, match="already exists; releases are immutable"):
        publish_release(folder, str(tmp_path), "m", version="v1", metrics=METRICS)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "m" / "v1").rglob("*")) == before
    for name, version in (("m", "../escape"), ("a/b", "v2"), ("m", "LATEST")):
        with pytest.raises(ReleaseError, match="must be one path segment"):
            publish_release(folder, str(tmp_path), name, version=version)
    with pytest.raises(ReleaseError, match="is not a model folder"):
        publish_release(tmp_path / "nothing", str(tmp_path), "m", version="v3")


def test_incomplete_or_corrupt_local_releases_are_refused(tiny_model, tmp_path, capsys):
    _, folder = tiny_model
    release = Path(publish_release(folder, str(tmp_path / "rel"), "m", version="v1"))
    # A copy without its manifest is what a crashed publish would leave.
    half = tmp_path / "half"
    half.mkdir()
    for entry in read_manifest(release)["files"][:3]:
        target = half / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((release / entry["path"]).read_bytes())
    assert main(["fetch-release", str(half), "--output", str(tmp_path / "out")]) == 2
    assert "has no manifest.json: it is not a complete release" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    # One flipped byte in the weights.
    weights = release / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match="model.safetensors does not have the sha256 the manifest lists"):
        verify_release(release)
    with pytest.raises(ReleaseError, match="the release is corrupt"):
        fetch_release(release, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]

    # A manifest that points outside the release is refused before anything is read.
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (release / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match="invalid file entry"):
        fetch_release(release, tmp_path / "out")


def test_fetch_needs_a_new_or_empty_output(tiny_model, tmp_path):
    _, folder = tiny_model
    release = publish_release(folder, str(tmp_path / "rel"), "m", version="v1")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="is not an empty folder"):
        fetch_release(release, tmp_path / "busy")
    assert os.listdir(tmp_path / "busy") == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert fetch_release(release, tmp_path / "empty") == tmp_path / "empty"


def test_publish_component_records_run_inputs_and_release(tiny_model, tmp_path):
    """The KFP component's body on local artifacts: lineage gets the run, every input's URI and hash."""
    from kfp import dsl

    from components.images import NAMES, tagged
    from components.publish import publish

    _, folder = tiny_model
    metric_files = []
    for task, values in METRICS.items():
        path = tmp_path / f"{task}-metrics"
        path.write_text(json.dumps({"task": task, "metrics": values, "model": f"/runs/{task}/model"}))
        metric_files.append(dsl.Metrics(uri=str(path)))
    data = {
        "uri": "/runs/shards",
        "index_sha256": "ab" * 32,
        "splits": {"pretrain_image_text/train": {"samples": 96, "shards": 3}},
    }
    model = dsl.Model(uri=str(folder), metadata={"preset": "x2vlm_tiny", "data": data})
    release = dsl.Artifact(uri=str(tmp_path / "release"))
    # What the pipeline passes when images/digests.json records pushed digests (these are made up).
    pinned_images = {name: f"{tagged(name)}@sha256:{str(i) * 64}" for i, name in enumerate(NAMES)}
    publish.python_func(
        model=model,
        task_metrics=metric_files,
        destination=str(tmp_path / "rel"),
        model_name="m",
        release=release,
        version="v7",
        max_shard_mb=4,
        pipeline_run_name="run-a",
        pipeline_run_id="1234",
        container_images=pinned_images,
    )
    where = str(tmp_path / "rel" / "m" / "v7")
    assert release.metadata["release_uri"] == where and release.metadata["version"] == "v7"
    assert json.loads((tmp_path / "release").read_text())["release"] == where
    manifest = verify_release(where)
    assert release.metadata["files"] == len(manifest["files"]) and manifest["weights"] == WEIGHTS_INDEX
    lineage = json.loads(Path(where, "lineage.json").read_text())
    assert lineage["pipeline_run"] == {"name": "run-a", "id": "1234"}
    assert lineage["container_images"] == pinned_images  # the release names the images that made it
    assert lineage["inputs"]["model"]["uri"] == str(folder) and lineage["training_data"] == data
    hashes = {m["task"]: m["sha256"] for m in lineage["inputs"]["metrics"]}
    assert hashes["retrieval"] == hashlib.sha256((tmp_path / "retrieval-metrics").read_bytes()).hexdigest()
    assert json.loads(Path(where, "metrics.json").read_text()) == METRICS


def test_local_storage_create_only_and_download(tmp_path):
    """The storage calls publishing uses, on local paths: if_generation_match=0 never replaces a file."""
    from x2vlm_core import storage
    from x2vlm_core.errors import StorageError

    source = tmp_path / "a.bin"
    source.write_bytes(b"first")
    target = tmp_path / "out" / "a.bin"
    assert storage.upload_file(source, str(target), if_generation_match=0) is None
    source.write_bytes(b"second")
    with pytest.raises(StorageError, match="already exists; it is never overwritten"):
        storage.upload_file(source, str(target), if_generation_match=0)
    assert target.read_bytes() == b"first" and sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]
    storage.upload_file(source, str(target))  # no precondition: replaced
    storage.download_file(str(target), tmp_path / "copy" / "a.bin")
    assert (tmp_path / "copy" / "a.bin").read_bytes() == b"second"
