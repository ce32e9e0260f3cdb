"""The real prepare-data Beam job on a synthetic world with one corrupted and one duplicated image."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from components.prepare_data import run_prepare_data
from x2vlm_core.data.readers import read_source
from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.data.sources import load_sources
from x2vlm_core.data.synthetic import generate_shapes_world
from x2vlm_core.errors import ConfigError, DataError

pytestmark = pytest.mark.slow

SHARD_SIZE = 16
MAX_SIDE = 48  # below the 64 px world, so every image is resized and every box rescaled


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    world = tmp_path_factory.mktemp("world")
    manifest = generate_shapes_world(world, num_images=60, seed=5)
    train = sorted((world / "coco/train2014").glob("*.jpg"))
    corrupted, original, duplicate = train[3], train[1], train[2]
    corrupted.write_bytes(b"\xff\xd8\xff\xe0not a jpeg at all" * 20)
    shutil.copyfile(original, duplicate)  # same pixels under another image id

    outputs, seconds = [], []
    for name in ("run_a", "run_b"):
        out = tmp_path_factory.mktemp(name)
        start = time.perf_counter()
        summary = run_prepare_data(world / "sources.yaml", out, shard_size=SHARD_SIZE, max_image_side=MAX_SIDE)
        seconds.append(time.perf_counter() - start)
        outputs.append((out, summary))
    print(f"prepare-data Beam runs took {seconds[0]:.1f} s and {seconds[1]:.1f} s")
    records = [r for source in load_sources(world / "sources.yaml") for r in read_source(source)]
    return {
        "world": world,
        "manifest": manifest,
        "records": records,
        "corrupted": str(corrupted),
        "original": str(original),
        "duplicate": str(duplicate),
        "out": outputs[0][0],
        "summary": outputs[0][1],
        "out_b": outputs[1][0],
    }


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def test_every_reject_is_listed_with_its_reason(prepared: dict) -> None:
    rejects = {(r["dataset"], r["key"]): r for r in _rejects(prepared["out"])}
    expected = {}
    originals = {}
    for record in prepared["records"]:
        if prepared["original"] in record["image_paths"]:
            originals[record["dataset"]] = min(originals.get(record["dataset"], record["key"]), record["key"])
    for record in prepared["records"]:
        if prepared["corrupted"] in record["image_paths"]:
            expected[(record["dataset"], record["key"])] = "undecodable"
        elif prepared["duplicate"] in record["image_paths"]:
            expected[(record["dataset"], record["key"])] = f"duplicate_of:{originals[record['dataset']]}"
    assert {key: r["reason"] for key, r in rejects.items()} == expected
    # Both bad images feed captions, Karpathy, VQA and RefCOCO+.
    assert {dataset for dataset, _ in expected} == {"pretrain_image_text", "retrieval", "vqa", "grounding"}
    assert rejects[("pretrain_image_text", "coco-" + Path(prepared["duplicate"]).stem[-12:])]["reason"] == (
        "duplicate_of:coco-" + Path(prepared["original"]).stem[-12:]
    )
    for reject in rejects.values():
        assert {"key", "dataset", "source", "split", "image_paths", "reason"} <= set(reject)


def test_shard_counts_equal_manifest_counts_minus_rejects(prepared: dict) -> None:
    index = read_index(prepared["out"])
    rejected = Counter((r["dataset"], r["split"]) for r in _rejects(prepared["out"]))
    expected = {
        dataset: {split: count - rejected[(dataset, split)] for split, count in splits.items()}
        for dataset, splits in prepared["manifest"]["datasets"].items()
    }
    written = {dataset: {split: entry["count"] for split, entry in splits.items()} for dataset, splits in index["datasets"].items()}
    assert written == expected
    summary = prepared["summary"]
    assert {name: summary[name] for name in index} == index  # the summary is the index plus run totals
    assert summary["read"] == prepared["manifest"]["total"] == summary["total"] + summary["rejected"]
    assert summary["rejected"] == sum(rejected.values())
    for splits in index["datasets"].values():
        for entry in splits.values():
            counts = [shard["count"] for shard in entry["shards"]]
            assert sum(counts) == entry["count"] and all(c == SHARD_SIZE for c in counts[:-1]) and 0 < counts[-1] <= SHARD_SIZE

    stats = json.loads((prepared["out"] / "stats.json").read_text())
    assert stats["records"] == {"read": summary["read"], "written": summary["total"], "rejected": summary["rejected"]}
    assert set(stats["rejects_by_reason"]) == {"undecodable", "duplicate_of"}
    assert sum(stats["caption_length_words"]["pretrain_image_text"].values()) == 2 * written["pretrain_image_text"]["train"] + 2 * written["pretrain_image_text"]["val"]
    assert stats["image_max_side"]["pretrain_region_text"] == {"<=0128": written["pretrain_region_text"]["train"]}


def test_index_hashes_match_the_shard_bytes(prepared: dict) -> None:
    out = prepared["out"]
    index = read_index(out)
    listed = set()
    for splits in index["datasets"].values():
        for entry in splits.values():
            for shard in entry["shards"]:
                data = (out / shard["path"]).read_bytes()
                assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["bytes"]
                listed.add(shard["path"])
    assert listed == {str(p.relative_to(out)) for p in out.rglob("*.tar")}


def test_shards_read_back_with_resized_images_and_rescaled_boxes(prepared: dict) -> None:
    out, world = prepared["out"], prepared["world"]
    index = read_index(out)
    records = {(r["dataset"], r["key"]): r for r in prepared["records"]}
    for dataset, splits in index["datasets"].items():
        for split, entry in splits.items():
            samples = list(iter_shard_samples(list_shards(out, dataset, split)))
            keys = [s["key"] for s in samples]
            assert len(samples) == entry["count"] and keys == sorted(keys)
            for sample in samples:
                meta, record = sample["meta"], records[(dataset, sample["key"])]
                assert meta["split"] == split and "image_paths" not in meta
                sizes = [Image.open(io.BytesIO(data)).size for data in sample["images"]]
                assert len(sizes) == len(record["image_paths"])
                if len(sizes) == 1:
                    assert [meta["width"], meta["height"]] == list(sizes[0])
                else:
                    assert meta["image_sizes"] == [list(size) for size in sizes]
                assert max(max(size) for size in sizes) == MAX_SIDE

    vg = next(iter_shard_samples(list_shards(out, "pretrain_region_text", "train")))
    raw = {e["id"]: e["regions"] for e in json.loads((world / "vg/region_descriptions.json").read_text())}
    first = raw[vg["meta"]["image_id"]][0]
    assert (vg["meta"]["width"], vg["meta"]["height"]) == (48, 32)  # 96x64 shrunk by 0.5
    assert vg["meta"]["regions"][0]["bbox"] == [first["x"] / 2, first["y"] / 2, first["width"] / 2, first["height"] / 2]
    grounding = next(iter_shard_samples(list_shards(out, "grounding", "train")))
    original_box = records[("grounding", grounding["key"])]["bbox"]
    assert grounding["meta"]["bbox"] == [round(v * 0.75, 2) for v in original_box]


def test_running_twice_gives_identical_bytes_and_leaves_no_temporary_files(prepared: dict) -> None:
    out_a, out_b = prepared["out"], prepared["out_b"]
    files_a = sorted(str(p.relative_to(out_a)) for p in out_a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(out_b)) for p in out_b.rglob("*") if p.is_file())
    assert files_a == files_b
    for name in files_a:
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes(), name
    assert not [name for name in files_a if ".tmp" in name or "staging" in name]
    assert not [p for p in out_a.iterdir() if p.name.startswith(".")]


def test_lookup_errors_and_refused_options(prepared: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no dataset 'vqa' with split 'test'.*'vqa': \['train', 'val'\]"):
        list_shards(prepared["out"], "vqa", "test")
    with pytest.raises(DataError, match="index.json does not exist"):
        read_index(tmp_path)
    with pytest.raises(ConfigError, match="multi_threading silently drops elements"):
        run_prepare_data(prepared["world"] / "sources.yaml", tmp_path, pipeline_args=["--direct_running_mode=multi_threading"])
    with pytest.raises(ConfigError, match="shard_size=0"):
        run_prepare_data(prepared["world"] / "sources.yaml", tmp_path, shard_size=0)


def _coco_train_source(world: Path) -> dict:
    entry = next(e for e in load_sources(world / "sources.yaml") if e.format == "coco_captions" and e.split == "train")
    return {"format": entry.format, "dataset": entry.dataset, "split": entry.split, **entry.paths}


def test_a_rerun_with_fewer_shards_leaves_only_indexed_shards(prepared: dict, tmp_path: Path) -> None:
    source = _coco_train_source(prepared["world"])
    first = run_prepare_data([source], tmp_path, shard_size=4, max_image_side=MAX_SIDE)
    second = run_prepare_data([source], tmp_path, shard_size=16, max_image_side=MAX_SIDE)
    assert first["total"] == second["total"]
    listed = {shard["path"] for shard in read_index(tmp_path)["datasets"]["pretrain_image_text"]["train"]["shards"]}
    assert len(listed) == -(-second["total"] // 16) < len(first["datasets"]["pretrain_image_text"]["train"]["shards"])
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.tar")} == listed


def test_two_sources_with_the_same_ids_in_one_dataset_fail_clearly(prepared: dict, tmp_path: Path) -> None:
    source = _coco_train_source(prepared["world"])
    with pytest.raises(DataError, match="two records have the key 'coco-.*give them different 'dataset' names"):
        run_prepare_data([source, source], tmp_path)
