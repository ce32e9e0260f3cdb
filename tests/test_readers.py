"""Source-list validation and the six format readers, on a generated shapes world."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from x2vlm_core.data.readers import read_source
from x2vlm_core.data.readers.vqa_v2 import answer_scores
from x2vlm_core.data.sources import load_sources
from x2vlm_core.data.synthetic import generate_shapes_world
from x2vlm_core.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("world")
    return root, generate_shapes_world(root, num_images=40, seed=1)


def _records(root: Path, fmt: str) -> list[dict]:
    return [record for source in load_sources(root / "sources.yaml") if source.format == fmt for record in read_source(source)]


def _split_counts(records: list[dict]) -> dict[str, int]:
    return dict(Counter(record["split"] for record in records))


def _check_common(record: dict, kind: str, dataset: str, images: int) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", record["key"])
    assert record["kind"] == kind and record["dataset"] == dataset
    assert len(record["image_paths"]) == images
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in record["image_paths"])
    json.dumps(record)  # plain JSON-able data only


def test_every_reader_yields_the_manifest_counts_with_unique_keys(world: tuple[Path, dict]) -> None:
    root, manifest = world
    records = [record for source in load_sources(root / "sources.yaml") for record in read_source(source)]
    counts: dict[str, Counter] = {}
    for record in records:
        counts.setdefault(record["dataset"], Counter())[record["split"]] += 1
    assert {name: dict(c) for name, c in counts.items()} == manifest["datasets"]
    for dataset in counts:
        keys = [r["key"] for r in records if r["dataset"] == dataset]
        assert len(keys) == len(set(keys)), dataset


def test_coco_captions_reader(world: tuple[Path, dict]) -> None:
    root, _ = world
    records = _records(root, "coco_captions")
    annotations = json.loads((root / "coco/annotations/captions_val2014.json").read_text())["annotations"]
    record = next(r for r in records if r["split"] == "val")
    _check_common(record, "image_text", "pretrain_image_text", 1)
    assert record["captions"] == [a["caption"] for a in annotations if a["image_id"] == record["image_id"]]
    assert record["image_paths"][0].endswith(f"val2014/COCO_val2014_{record['image_id']:012d}.jpg")


def test_karpathy_reader(world: tuple[Path, dict]) -> None:
    root, manifest = world
    records = _records(root, "karpathy")
    assert _split_counts(records) == manifest["datasets"]["retrieval"]
    entries = {e["cocoid"]: e for e in json.loads((root / "coco/dataset_coco.json").read_text())["images"]}
    for record in records:
        _check_common(record, "image_text", "retrieval", 1)
        entry = entries[record["image_id"]]
        assert record["captions"] == [s["raw"] for s in entry["sentences"]] and len(record["captions"]) == 5
        assert record["split"] == entry["split"]


def test_visual_genome_reader(world: tuple[Path, dict]) -> None:
    root, _ = world
    records = _records(root, "visual_genome")
    raw = {e["id"]: e["regions"] for e in json.loads((root / "vg/region_descriptions.json").read_text())}
    for record in records:
        _check_common(record, "region_text", "pretrain_region_text", 1)
        assert record["captions"] == [] and record["split"] == "train"
        expected = [{"bbox": [r["x"], r["y"], r["width"], r["height"]], "caption": r["phrase"]} for r in raw[record["image_id"]]]
        assert record["regions"] == expected
        assert any(word in region["caption"] for region in record["regions"] for word in ("left", "right", "top", "bottom", "middle"))


def test_vqa_reader_scores_answers_by_the_vqa_rule(world: tuple[Path, dict]) -> None:
    root, manifest = world
    records = _records(root, "vqa_v2")
    assert _split_counts(records) == manifest["datasets"]["vqa"]
    for record in records:
        _check_common(record, "vqa", "vqa", 1)
        assert len(record["answers"]) == 10
        normalized = Counter(a.strip().lower() for a in record["answers"])
        assert record["answer_scores"] == {a: min(1.0, n / 3) for a, n in normalized.items()}
    assert {r["answer_type"] for r in records} == {"yes/no", "number", "other"}


def test_vqa_score_rule() -> None:
    answers = ["Red", "red ", " red", "blue", "blue", "green"] + ["yellow"] * 4
    assert answer_scores(answers) == {"red": 1.0, "blue": pytest.approx(2 / 3), "green": pytest.approx(1 / 3), "yellow": 1.0}


def test_nlvr2_reader(world: tuple[Path, dict]) -> None:
    root, manifest = world
    records = _records(root, "nlvr2")
    assert _split_counts(records) == manifest["datasets"]["nlvr2"]
    for record in records:
        _check_common(record, "nlvr2", "nlvr2", 2)
        assert isinstance(record["label"], bool)
        assert record["identifier"].startswith(record["split"] + "-")
        assert record["image_paths"][0].endswith(record["identifier"].rsplit("-", 1)[0] + "-img0.png")
    assert Counter(r["label"] for r in records)[True] == len(records) / 2


def test_nlvr2_reader_finds_train_images_in_numbered_folders(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    copy = tmp_path / "nlvr2"
    shutil.copytree(root / "nlvr2", copy)
    first = json.loads((copy / "train.json").read_text().splitlines()[0])
    pair = first["identifier"].rsplit("-", 1)[0]
    nested = copy / "images/train" / first["directory"]
    nested.mkdir()
    for name in (f"{pair}-img0.png", f"{pair}-img1.png"):
        os.replace(copy / "images/train" / name, nested / name)
    source = load_sources([{"format": "nlvr2", "dataset": "nlvr2", "annotations": str(copy / "train.json"), "images": str(copy / "images")}])[0]
    record = next(iter(read_source(source)))
    assert record["image_paths"] == [str(nested / f"{pair}-img0.png"), str(nested / f"{pair}-img1.png")]


def test_refcoco_reader(world: tuple[Path, dict]) -> None:
    root, manifest = world
    records = _records(root, "refcoco")
    assert _split_counts(records) == manifest["datasets"]["grounding"]
    boxes = {a["id"]: a["bbox"] for a in json.loads((root / "refcoco+/instances.json").read_text())["annotations"]}
    refs = {r["ref_id"]: r for r in pickle.loads((root / "refcoco+/refs(unc).p").read_bytes())}
    for record in records:
        _check_common(record, "grounding", "grounding", 1)
        ref = refs[record["ref_id"]]
        assert record["bbox"] == boxes[ref["ann_id"]]
        assert record["sentences"] == [s["raw"] for s in ref["sentences"]]
        # The refs' file_name has an annotation suffix; the image read is the plain COCO file.
        assert record["image_paths"][0].endswith(f"train2014/COCO_train2014_{ref['image_id']:012d}.jpg")


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_refs_pickle_is_refused_without_running_it(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    marker = tmp_path / "pwned"
    evil = tmp_path / "refs(unc).p"
    evil.write_bytes(pickle.dumps([{"ref_id": 0, "payload": _RunsCode(marker)}], protocol=2))
    source = load_sources(
        [{"format": "refcoco", "dataset": "r", "refs": str(evil), "instances": str(root / "refcoco+/instances.json"), "images": str(root / "coco/train2014")}]
    )[0]
    with pytest.raises(DataError, match=r"refs\(unc\)\.p.*refused.*(posix|os)\.system"):
        list(read_source(source))
    assert not marker.exists()


def test_unknown_format_and_unknown_key_list_the_valid_ones(world: tuple[Path, dict]) -> None:
    root, _ = world
    with pytest.raises(ConfigError, match=r"format 'laion'.*coco_captions.*karpathy.*visual_genome"):
        load_sources([{"format": "laion", "dataset": "x"}])
    entry = {"format": "karpathy", "dataset": "coco", "annotations": str(root / "coco/dataset_coco.json"), "images": str(root / "coco")}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['image_root'\].*valid keys are \['annotations', 'dataset', 'format', 'images'\]"):
        load_sources([{**entry, "image_root": "x"}])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['split'\]"):  # Karpathy files carry their own splits
        load_sources([{**entry, "split": "train"}])
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['images'\]"):
        load_sources([{k: v for k, v in entry.items() if k != "images"}])
    with pytest.raises(ConfigError, match=r"dataset: 'coco/x' is not a valid name"):
        load_sources([{**entry, "dataset": "coco/x"}])


def test_missing_file_names_the_field_and_path(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    missing = tmp_path / "nowhere.json"
    entry = {"format": "vqa_v2", "dataset": "vqa", "questions": str(missing), "annotations": str(root / "vqa/v2_mscoco_train2014_annotations.json"), "images": str(root / "coco/train2014")}
    with pytest.raises(DataError, match=rf"sources\[0\]\.questions: file {re.escape(str(missing))} does not exist"):
        load_sources([entry])
    with pytest.raises(DataError, match="sources file .* does not exist"):
        load_sources(tmp_path / "sources.yaml")


def test_yaml_relative_paths_resolve_against_the_file(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    shutil.copytree(root / "vg", tmp_path / "vg")
    entry = {"format": "visual_genome", "dataset": "vg", "regions": "vg/region_descriptions.json", "image_data": "vg/image_data.json", "images": "vg"}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump({"sources": [entry]}))
    (source,) = load_sources(tmp_path / "sources.yaml")
    assert source.path("regions") == tmp_path / "vg/region_descriptions.json" and source.split == "train"
    assert len(list(read_source(source))) == len(json.loads((tmp_path / "vg/region_descriptions.json").read_text()))

    (tmp_path / "bad.yaml").write_text("- format: karpathy\n")
    with pytest.raises(ConfigError, match="exactly one key 'sources'"):
        load_sources(tmp_path / "bad.yaml")


def test_malformed_annotation_files_raise_data_errors(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    broken = tmp_path / "captions.json"
    broken.write_text('{"images": [], "annotations": [')
    entry = {"format": "coco_captions", "dataset": "c", "annotations": str(broken), "images": str(root / "coco/train2014")}
    with pytest.raises(DataError, match=r"captions\.json: not valid JSON"):
        list(read_source(load_sources([entry])[0]))
    broken.write_text(json.dumps({"images": [{"id": 1}], "annotations": [{"image_id": 1, "caption": "a red circle"}]}))
    with pytest.raises(DataError, match=r"images\[0\] has no 'file_name' field"):
        list(read_source(load_sources([entry])[0]))
