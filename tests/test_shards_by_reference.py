"""Shards by reference: prepare-data keeps the shards under a durable data root, keyed by its inputs,
and its Dataset artifact is a small manifest that every stage follows to them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from kfp.dsl import Dataset

from components.prepare_data.component import prepare_data
from x2vlm_core import storage
from x2vlm_core.data.shard_location import LOCATION_FILE, follow_manifest
from x2vlm_core.data.shards import INDEX_FILE, iter_shard_samples, list_shards, read_index
from x2vlm_core.data.sources import load_sources
from x2vlm_core.data.streaming import dataset_shards
from x2vlm_core.dataprep.data_root import content_key, shards_location, write_manifest
from x2vlm_core.errors import DataError
from x2vlm_core.release.lineage import data_fingerprint
from x2vlm_core.tasks.answers import answer_vocabulary


def _sources(shapes_world, folder: Path, formats: tuple[str, ...]) -> str:
    """A sources file of some of the shapes world's entries (a small, quick Beam job)."""
    root, _ = shapes_world
    entries = yaml.safe_load((root / "sources.yaml").read_text())["sources"]
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [e for e in entries if e["format"] in formats]}))
    return str(path)


def _prepare(sources: str, artifact: Path, data_root: str, snapshot: str = "") -> Dataset:
    shards = Dataset(name="shards", uri=str(artifact))
    prepare_data.python_func(
        sources=sources, shards=shards, shard_size=16, max_image_side=64, data_root=data_root, snapshot=snapshot
    )
    return shards


@pytest.mark.slow
@pytest.mark.beam
def test_the_artifact_is_a_manifest_and_the_stages_read_the_shards_from_the_data_root(
    shapes_world, tmp_path, gcs_bucket
) -> None:
    sources = _sources(shapes_world, tmp_path, ("karpathy", "vqa_v2"))
    data_root = tmp_path / "data"
    shards = _prepare(sources, tmp_path / "artifact", str(data_root))

    location = shards.metadata["data_uri"]
    key = content_key(load_sources(sources), {"shard_size": 16, "max_image_side": 64, "num_frames": 3, "snapshot": ""})
    assert location == str(data_root / "shards" / key)
    # The artifact holds the index and where the shards are, nothing else.
    assert sorted(p.name for p in (tmp_path / "artifact").iterdir()) == [INDEX_FILE, LOCATION_FILE]
    assert (tmp_path / "artifact" / INDEX_FILE).read_bytes() == (Path(location) / INDEX_FILE).read_bytes()
    assert follow_manifest(shards.path) == location and follow_manifest(location) == location

    # What pretrain, finetune and evaluate call, given the artifact folder, reads under the data root.
    streamed = dataset_shards(shards.path, "retrieval", "test")
    assert streamed and all(s.path.startswith(f"{location}/") for s in streamed)
    assert len(list(iter_shard_samples(streamed))) == read_index(shards.path)["datasets"]["retrieval"]["test"]["count"]
    assert answer_vocabulary(shards.path, "vqa", "train", 5)
    assert data_fingerprint(shards.path)["samples"] == read_index(location)["total"]

    # The same inputs name the same folder (a retry rewrites it); a new snapshot names another.
    again = _prepare(sources, tmp_path / "artifact-2", str(data_root))
    assert again.metadata["data_uri"] == location
    assert (
        _prepare(sources, tmp_path / "artifact-3", str(data_root), snapshot="2026-05-01").metadata["data_uri"]
        != location
    )

    # On a gs:// data root the Beam job writes to the bucket itself, byte for byte the same shards.
    remote = _prepare(sources, tmp_path / "artifact-gcs", storage.join(gcs_bucket, "data"))
    assert remote.metadata["data_uri"] == storage.join(gcs_bucket, "data", "shards", key)
    assert sorted(p.name for p in (tmp_path / "artifact-gcs").iterdir()) == [INDEX_FILE, LOCATION_FILE]
    assert read_index(remote.path) == read_index(location)
    assert [s.path for s in list_shards(remote.path, "retrieval", "test")] == [
        s.path.replace(location, remote.metadata["data_uri"]) for s in streamed
    ]

    # Without the data root's shards, the manifest alone cannot be read.
    shutil.rmtree(location)
    with pytest.raises(DataError, match=f"{location}/index.json does not exist"):
        list_shards(shards.path, "retrieval", "test")


def test_without_a_data_root_the_shards_are_the_artifact(tiny_shards) -> None:
    assert follow_manifest(str(tiny_shards)) == str(tiny_shards)
    assert list_shards(tiny_shards, "retrieval", "test")[0].path.startswith(f"{tiny_shards}/")


def test_the_content_key_follows_every_input_that_changes_the_shards(shapes_world, tmp_path) -> None:
    sources = load_sources(_sources(shapes_world, tmp_path, ("karpathy",)))
    settings = {"shard_size": 16, "max_image_side": 64, "num_frames": 3, "snapshot": ""}
    key = content_key(sources, settings)
    assert key == content_key(load_sources(_sources(shapes_world, tmp_path, ("karpathy",))), dict(settings))
    for name, value in (("shard_size", 32), ("max_image_side", 384), ("num_frames", 8), ("snapshot", "v2")):
        assert content_key(sources, {**settings, name: value}) != key, name
    # The same file elsewhere names other data: relative paths resolve against it.
    assert content_key(load_sources(_sources(shapes_world, tmp_path, ("karpathy", "coco_captions"))), settings) != key
    relative = Path(shards_location("data", sources, settings))
    assert relative.is_absolute() and relative.parts[-3:] == ("data", "shards", key)


def test_a_damaged_manifest_or_a_missing_output_is_one_clear_line(tmp_path) -> None:
    (tmp_path / LOCATION_FILE).write_text(json.dumps({"uri": "relative/shards"}))
    with pytest.raises(DataError, match="expected .*absolute path.*re-run prepare-data"):
        follow_manifest(str(tmp_path))
    (tmp_path / LOCATION_FILE).write_text("not json")
    with pytest.raises(DataError, match=f"{tmp_path}/{LOCATION_FILE}: expected"):
        list_shards(tmp_path, "retrieval", "test")
    with pytest.raises(DataError, match="has no index.json: not a complete prepare-data output"):
        write_manifest(str(tmp_path / "manifest"), str(tmp_path / "never-prepared"))


def test_the_single_task_run_refers_to_existing_shards_and_follows_a_manifest_to_them(tiny_shards, tmp_path) -> None:
    from components.shards_reference import shards_reference

    def refer(shards_uri: str, name: str) -> Dataset:
        artifact = Dataset(name="shards", uri=str(tmp_path / name))
        shards_reference.python_func(shards_uri=shards_uri, shards=artifact)
        return artifact

    # A plain prepare-data output, then a manifest of it: both end at the same shards, never copied.
    first = refer(str(tiny_shards), "first")
    second = refer(first.path, "second")
    for artifact in (first, second):
        assert sorted(p.name for p in Path(artifact.path).iterdir()) == [INDEX_FILE, LOCATION_FILE]
        assert follow_manifest(artifact.path) == str(tiny_shards) == artifact.metadata["data_uri"]
        assert read_index(artifact.path) == read_index(tiny_shards)
