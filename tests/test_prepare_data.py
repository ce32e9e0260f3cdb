"""The real prepare-data Beam job on a synthetic world with broken inputs in every real schema.

Damaged on purpose: a corrupt COCO JPEG and a duplicated one, a truncated Visual Genome image, a
zero-byte NLVR2 image, a missing TSV image and an empty TSV caption, a truncated WebVid video and an
empty WebVid caption, a missing MSR-VTT video (retrieval and QA), an img2dataset tar whose samples
lack their image or hold garbage or zero bytes, a failed img2dataset download, X²-VLM json-lines
with bad base64 / an empty caption / only empty region phrases, and one empty Karpathy sentence.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset
from PIL import Image

from x2vlm_core import storage
from x2vlm_core.data.readers import read_source, source_parts
from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.data.sources import load_sources
from x2vlm_core.data.synthetic import generate_shapes_world
from x2vlm_core.dataprep.beam_job import run_prepare_data
from x2vlm_core.errors import ConfigError, DataError

pytestmark = [pytest.mark.slow, pytest.mark.beam]

SHARD_SIZE = 16
MAX_SIDE = 48  # below the 64 px world, so every image is resized and every box rescaled


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _damage(world: Path) -> dict[str, str]:
    """Break inputs in every schema; return {image input or record key: expected reject reason}."""
    expected = {}
    train = sorted((world / "coco/train2014").glob("*.jpg"))
    train[3].write_bytes(b"\xff\xd8\xff\xe0not a jpeg at all" * 20)
    expected[str(train[3])] = "undecodable"
    shutil.copyfile(train[1], train[2])  # same pixels under another image id: checked as duplicates

    vg = world / "vg/VG_100K/2.jpg"
    vg.write_bytes(vg.read_bytes()[: vg.stat().st_size // 2])
    expected[str(vg)] = "undecodable"
    zero = sorted((world / "nlvr2/images/dev").glob("*-img1.png"))[0]
    zero.write_bytes(b"")
    expected[str(zero)] = "empty_file"

    tsv = world / "cc3m/tsv/Train_GCC-training.tsv"
    lines = tsv.read_text().splitlines()
    missing = world / "cc3m/tsv/images" / lines[0].split("\t")[1]
    missing.unlink()
    expected[str(missing)] = "missing_file"
    lines[1] = "   \t" + lines[1].split("\t")[1]
    tsv.write_text("\n".join(lines) + "\n")

    csv_path = world / "webvid/results_2M_train.csv"
    rows = csv_path.read_text().splitlines()
    first = rows[1].split(",")
    video = world / "webvid/videos" / first[3] / f"{first[0]}.mp4"
    video.write_bytes(video.read_bytes()[:200])
    expected[str(video)] = "undecodable"
    second = rows[2].split(",")
    rows[2] = ",".join(second[:4] + ['""'])
    csv_path.write_text("\n".join(rows) + "\n")
    gone = world / "msrvtt/videos/all/video1.mp4"
    gone.unlink()
    expected[str(gone)] = "missing_file"

    jpeg = train[0].read_bytes()
    _tar(
        world / "cc3m/webdataset/00002.tar",
        [
            ("000020000.txt", b"a caption without its image"),
            ("000020001.jpg", b"\xff\xd8garbage"),
            ("000020001.txt", b"a garbage image"),
            ("000020002.jpg", b""),
            ("000020002.txt", b"a zero-byte image"),
        ],
    )
    expected.update(
        {
            "img2dataset-webdataset-000020000": "missing_file",
            "img2dataset-webdataset-000020001": "undecodable",
            "img2dataset-webdataset-000020002": "empty_file",
        }
    )
    parquet = world / "cc3m/files/00000.parquet"
    table = pq.read_table(parquet).to_pylist()
    table.append({**table[0], "key": "000009999", "status": "failed_to_download", "error_message": "HTTP 404"})
    pq.write_table(pa.Table.from_pylist(table), parquet)
    expected["img2dataset-files-000009999"] = "download_failed"

    image_text = world / "x2vlm/image_text/part-00000.jsonl"
    count = len(image_text.read_text().splitlines())
    with open(image_text, "a") as handle:
        handle.write(json.dumps({"binary": "%%% not base64", "desc": "a broken image"}) + "\n")
        handle.write(json.dumps({"binary": base64.b64encode(jpeg).decode(), "desc": " "}) + "\n")
    expected[f"x2vlm-image_text-part-00000-{count + 1:09d}"] = "undecodable"
    expected[f"x2vlm-image_text-part-00000-{count + 2:09d}"] = "empty_caption"
    region_text = world / "x2vlm/region_text/part-00000.jsonl"
    count = len(region_text.read_text().splitlines())
    with open(region_text, "a") as handle:
        handle.write(
            json.dumps({"binary": base64.b64encode(jpeg).decode(), "elems": [{"bb": [1, 1, 9, 9], "caption": ""}]})
            + "\n"
        )
    expected[f"x2vlmregion-region_text-part-00000-{count + 1:09d}"] = "empty_caption"

    karpathy = world / "coco/dataset_coco.json"
    data = json.loads(karpathy.read_text())
    untouched = next(i for i in data["images"] if i["filename"] not in {p.name for p in train[1:4]})
    untouched["sentences"][0]["raw"] = ""  # one empty caption of five: dropped, the sample kept
    karpathy.write_text(json.dumps(data))
    expected.update({"tsv-Train_GCC-training-000000002": "empty_caption", "webvid-1000000001": "empty_caption"})
    return expected


def _expected_reason(record: dict, damage: dict[str, str]) -> str | None:
    if record["key"] in damage:
        return damage[record["key"]]
    return next((damage[path] for path in record["image_paths"] if path in damage), None)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    world = tmp_path_factory.mktemp("world")
    manifest = generate_shapes_world(world, num_images=60, seed=5)
    damage = _damage(world)
    train = sorted((world / "coco/train2014").glob("*.jpg"))

    outputs, seconds = [], []
    for name in ("run_a", "run_b"):
        out = tmp_path_factory.mktemp(name)
        start = time.perf_counter()
        summary = run_prepare_data(world / "sources.yaml", out, shard_size=SHARD_SIZE, max_image_side=MAX_SIDE)
        seconds.append(time.perf_counter() - start)
        outputs.append((out, summary))
    print(f"prepare-data Beam runs took {seconds[0]:.1f} s and {seconds[1]:.1f} s")
    records = [
        r
        for source in load_sources(world / "sources.yaml")
        for s, part in source_parts(source)
        for r in read_source(s, part)
    ]
    return {
        "world": world,
        "manifest": manifest,
        "records": records,
        "damage": damage,
        "original": str(train[1]),
        "duplicate": str(train[2]),
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
        reason = _expected_reason(record, prepared["damage"])
        if reason:
            expected[(record["dataset"], record["key"])] = reason
        elif prepared["duplicate"] in record["image_paths"]:
            expected[(record["dataset"], record["key"])] = f"duplicate_of:{originals[record['dataset']]}"
    assert {key: r["reason"] for key, r in rejects.items()} == expected
    assert set(Counter(reason.split(":")[0] for reason in expected.values())) == {
        "undecodable",
        "duplicate_of",
        "empty_file",
        "missing_file",
        "empty_caption",
        "download_failed",
    }
    # Every schema lost something; both bad COCO images feed captions, Karpathy, VQA and RefCOCO+
    # (the CCLM file embeds its own copies of the images, written before the damage).
    assert {dataset for dataset, _ in expected} == {
        "pretrain_image_text",
        "retrieval",
        "vqa",
        "grounding",
        "pretrain_region_text",
        "nlvr2",
        "pretrain_video_text",
        "video_retrieval",
        "video_qa",
    }
    assert {r["source"] for r in rejects.values()} >= {
        "coco_captions",
        "visual_genome",
        "visual_genome_objects",
        "nlvr2",
        "caption_tsv",
        "webvid",
        "msrvtt",
        "msrvtt_qa",
        "img2dataset_webdataset",
        "img2dataset_files",
        "x2vlm_image_text",
        "x2vlm_region_text",
    }
    assert rejects[("pretrain_image_text", "coco-" + Path(prepared["duplicate"]).stem[-12:])]["reason"] == (
        "duplicate_of:coco-" + Path(prepared["original"]).stem[-12:]
    )
    for reject in rejects.values():
        assert {"key", "dataset", "source", "split", "image_paths", "reason"} <= set(reject)


def test_samples_in_equal_written_plus_rejected_per_source(prepared: dict) -> None:
    out, summary = prepared["out"], prepared["summary"]
    stats = json.loads((out / "stats.json").read_text())
    read = Counter((r["dataset"], r["source"], r["split"]) for r in prepared["records"])
    rejected = Counter((r["dataset"], r["source"], r["split"]) for r in _rejects(out))
    groups = {(d, s, p) for d, sources in stats["read"].items() for s, splits in sources.items() for p in splits}
    assert groups == set(read)
    for dataset, source, split in groups:
        written = stats["written"].get(dataset, {}).get(source, {}).get(split, 0)
        assert (
            stats["read"][dataset][source][split]
            == read[(dataset, source, split)]
            == written + rejected[(dataset, source, split)]
        )

    index = read_index(out)
    written = {
        dataset: {split: entry["count"] for split, entry in splits.items()}
        for dataset, splits in index["datasets"].items()
    }
    expected: dict[str, dict[str, int]] = {}
    for (dataset, _, split), count in read.items():
        left = count - rejected[(dataset, _, split)]
        if left:
            expected.setdefault(dataset, {}).setdefault(split, 0)
            expected[dataset][split] += left
    assert written == expected
    assert {name: summary[name] for name in index} == index  # the summary is the index plus run totals
    assert summary["read"] == len(prepared["records"]) == summary["total"] + summary["rejected"]
    assert summary["read"] > prepared["manifest"]["total"]  # the damage added records too
    assert stats["records"] == {"read": summary["read"], "written": summary["total"], "rejected": summary["rejected"]}
    reasons = Counter(r["reason"].split(":")[0] for r in _rejects(out))
    assert stats["rejects_by_reason"] == dict(reasons)
    assert stats["texts_dropped_empty"] == {"retrieval": 1}
    for splits in index["datasets"].values():
        for entry in splits.values():
            counts = [shard["count"] for shard in entry["shards"]]
            assert (
                sum(counts) == entry["count"]
                and all(c == SHARD_SIZE for c in counts[:-1])
                and 0 < counts[-1] <= SHARD_SIZE
            )

    # The Beam counters tell the same story as the files.
    counters = summary["counters"]
    assert counters["records_read"] == summary["read"] and counters["samples_written"] == summary["total"]
    assert counters["rejected"] == summary["rejected"] and counters["texts_dropped_empty"] == 1
    assert {name[len("rejected_") :]: n for name, n in counters.items() if name.startswith("rejected_")} == dict(
        reasons
    )


def test_histograms_and_answer_lists(prepared: dict) -> None:
    out = prepared["out"]
    stats = json.loads((out / "stats.json").read_text())
    samples = {
        d: [s for split in splits for s in iter_shard_samples(list_shards(out, d, split))]
        for d, splits in read_index(out)["datasets"].items()
    }
    texts = sum(len(s["meta"]["captions"]) for s in samples["pretrain_image_text"])
    assert sum(stats["caption_length_words"]["pretrain_image_text"].values()) == texts
    vg = sum(1 for s in samples["pretrain_region_text"] if s["meta"]["source"].startswith("visual_genome"))
    assert stats["image_max_side"]["pretrain_region_text"] == {
        "<=0064": len(samples["pretrain_region_text"]) - vg,
        "<=0128": vg,
    }
    assert stats["answer_lists"] == {
        "video_qa": "video_qa/answers.json",
        "vqa": "vqa/answers.json",
        "xgqa": "xgqa/answers.json",
    }
    answers = json.loads((out / "video_qa/answers.json").read_text())
    for split, items in answers.items():
        in_split = [s for s in samples["video_qa"] if s["meta"]["split"] == split]
        assert sum(a["count"] for a in items) == len(in_split)
        assert Counter(s["meta"]["answer"] for s in in_split) == {a["answer"]: a["count"] for a in items}
        assert [a["count"] for a in items] == sorted((a["count"] for a in items), reverse=True)


def test_shards_read_with_webdataset_and_videos_hold_their_frames(prepared: dict) -> None:
    out = prepared["out"]
    index = read_index(out)
    for dataset, splits in index["datasets"].items():
        for split, entry in splits.items():
            urls = [str(out / shard["path"]) for shard in entry["shards"]]
            samples = list(webdataset.WebDataset(urls, shardshuffle=False))
            assert len(samples) == entry["count"]
            for sample in samples:
                meta = json.loads(sample["json"])
                assert meta["key"] == sample["__key__"] and meta["dataset"] == dataset
                if "num_frames" in meta:
                    assert meta["num_frames"] == 3 == len(meta["image_sizes"])
                    assert sorted(k for k in sample if k.endswith(".jpg")) == ["img0.jpg", "img1.jpg", "img2.jpg"]
                    assert meta["kind"] in ("video_text", "video_qa")
    video = next(iter_shard_samples(list_shards(out, "pretrain_video_text", "train")))
    frames = [Image.open(io.BytesIO(data)) for data in video["images"]]
    assert [f.size for f in frames] == [(MAX_SIDE, MAX_SIDE)] * 3 and frames[0].tobytes() != frames[-1].tobytes()


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
                if meta["kind"] == "parallel_text":  # sentence pairs: a json member alone
                    assert sizes == [] == meta["image_sizes"] and meta["source_text"] and meta["target_text"]
                    continue
                if len(sizes) == 1:
                    assert [meta["width"], meta["height"]] == list(sizes[0])
                else:
                    assert meta["image_sizes"] == [list(size) for size in sizes]
                assert max(max(size) for size in sizes) == MAX_SIDE
                assert len(sizes) == meta.get("num_frames", len(record["image_paths"]))

    vg = next(
        s
        for s in iter_shard_samples(list_shards(out, "pretrain_region_text", "train"))
        if s["meta"]["source"] == "visual_genome"
    )
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
        run_prepare_data(
            prepared["world"] / "sources.yaml", tmp_path, pipeline_args=["--direct_running_mode=multi_threading"]
        )
    with pytest.raises(ConfigError, match="shard_size=0"):
        run_prepare_data(prepared["world"] / "sources.yaml", tmp_path, shard_size=0)


def _coco_train_source(world: Path) -> dict:
    entry = next(e for e in load_sources(world / "sources.yaml") if e.format == "coco_captions" and e.split == "train")
    return {"format": entry.format, "dataset": entry.dataset, "split": entry.split, **entry.paths}


def test_a_rerun_with_fewer_shards_leaves_only_indexed_shards(prepared: dict, tmp_path: Path) -> None:
    source = _coco_train_source(prepared["world"])
    first = run_prepare_data([source], tmp_path, shard_size=4, max_image_side=MAX_SIDE)
    second = run_prepare_data([source], tmp_path, shard_size=16, max_image_side=MAX_SIDE, overwrite=True)
    assert first["total"] == second["total"]
    listed = {shard["path"] for shard in read_index(tmp_path)["datasets"]["pretrain_image_text"]["train"]["shards"]}
    assert len(listed) == -(-second["total"] // 16) < len(first["datasets"]["pretrain_image_text"]["train"]["shards"])
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.tar")} == listed


def test_two_sources_with_the_same_ids_in_one_dataset_fail_clearly(prepared: dict, tmp_path: Path) -> None:
    source = _coco_train_source(prepared["world"])
    with pytest.raises(DataError, match="two records have the key 'coco-.*give them different 'dataset' names"):
        run_prepare_data([source, source], tmp_path)


def _sources_of(world: Path, *formats: str) -> list[dict]:
    return [
        {"format": e.format, "dataset": e.dataset, **({"split": e.split} if e.split else {}), **e.paths, **e.options}
        for e in load_sources(world / "sources.yaml")
        if e.format in formats
    ]


def test_frames_per_video_is_a_job_option(prepared: dict, tmp_path: Path) -> None:
    summary = run_prepare_data(
        _sources_of(prepared["world"], "msrvtt_qa"), tmp_path, num_frames=5, max_image_side=MAX_SIDE
    )
    assert summary["settings"]["num_frames"] == 5 and summary["total"] > 0
    for split in summary["datasets"]["video_qa"]:
        for sample in iter_shard_samples(list_shards(tmp_path, "video_qa", split)):
            assert sample["meta"]["num_frames"] == 5 == len(sample["images"])
    with pytest.raises(ConfigError, match="num_frames=0"):
        run_prepare_data(_sources_of(prepared["world"], "msrvtt_qa"), tmp_path, num_frames=0)


def test_shards_written_to_gcs_match_a_local_run(prepared: dict, gcs_bucket: str, tmp_path: Path) -> None:
    sources = _sources_of(prepared["world"], "coco_captions", "msrvtt_qa", "nlvr2")
    local = run_prepare_data(sources, tmp_path, shard_size=SHARD_SIZE, max_image_side=MAX_SIDE)
    target = storage.join(gcs_bucket, "runs/shards")
    remote = run_prepare_data(sources, target, shard_size=SHARD_SIZE, max_image_side=MAX_SIDE)
    assert remote["output_dir"] == target
    assert read_index(target) == read_index(tmp_path) == {name: local[name] for name in read_index(tmp_path)}
    listed = storage.list_uris(target)
    assert not [uri for uri in listed if ".prepare-staging" in uri or uri.endswith(".partial")]
    assert {uri[len(target) + 1 :] for uri in listed} == {
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
    }
    for relative in ("index.json", "stats.json", "rejects.jsonl", "video_qa/answers.json"):
        assert storage.read_bytes(storage.join(target, relative)) == (tmp_path / relative).read_bytes()
    for dataset, splits in read_index(target)["datasets"].items():
        for split, entry in splits.items():
            for shard in entry["shards"]:
                data = storage.read_bytes(storage.join(target, shard["path"]))
                assert (
                    hashlib.sha256(data).hexdigest() == shard["sha256"]
                    and data == (tmp_path / shard["path"]).read_bytes()
                )
            samples = list(iter_shard_samples(list_shards(target, dataset, split)))
            assert len(samples) == entry["count"]
