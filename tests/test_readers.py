"""Source-list validation and every format reader, on a generated shapes world."""

from __future__ import annotations

import base64
import csv
import json
import os
import pickle
import re
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

from x2vlm_core.data.images import load_and_validate, read_input
from x2vlm_core.data.readers import read_source, source_parts
from x2vlm_core.data.readers.vqa_v2 import answer_scores
from x2vlm_core.data.sources import Source, load_sources
from x2vlm_core.data.synthetic import generate_shapes_world
from x2vlm_core.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("world")
    return root, generate_shapes_world(root, num_images=40, seed=1)


def _records(root: Path, fmt: str) -> list[dict]:
    return [
        record
        for source in load_sources(root / "sources.yaml")
        if source.format == fmt
        for record in read_source(source)
    ]


def _split_counts(records: list[dict]) -> dict[str, int]:
    return dict(Counter(record["split"] for record in records))


def _check_common(record: dict, kind: str, dataset: str, images: int) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", record["key"])
    assert record["kind"] == kind and record["dataset"] == dataset
    assert len(record["image_paths"]) == images
    assert all(Path(p.split("#")[0]).is_absolute() and Path(p.split("#")[0]).is_file() for p in record["image_paths"])
    assert all(read_input(p)[1] is None for p in record["image_paths"])  # every input resolves to bytes
    assert "reader_reject" not in record  # the shapes world downloads everything
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
        expected = [
            {"bbox": [r["x"], r["y"], r["width"], r["height"]], "caption": r["phrase"]} for r in raw[record["image_id"]]
        ]
        assert record["regions"] == expected
        assert any(
            word in region["caption"]
            for region in record["regions"]
            for word in ("left", "right", "top", "bottom", "middle")
        )


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
    assert answer_scores(answers) == {
        "red": 1.0,
        "blue": pytest.approx(2 / 3),
        "green": pytest.approx(1 / 3),
        "yellow": 1.0,
    }


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
    source = load_sources(
        [
            {
                "format": "nlvr2",
                "dataset": "nlvr2",
                "annotations": str(copy / "train.json"),
                "images": str(copy / "images"),
            }
        ]
    )[0]
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
        [
            {
                "format": "refcoco",
                "dataset": "r",
                "refs": str(evil),
                "instances": str(root / "refcoco+/instances.json"),
                "images": str(root / "coco/train2014"),
            }
        ]
    )[0]
    with pytest.raises(DataError, match=r"refs\(unc\)\.p.*refused.*(posix|os)\.system"):
        list(read_source(source))
    assert not marker.exists()


def test_unknown_format_and_unknown_key_list_the_valid_ones(world: tuple[Path, dict]) -> None:
    root, _ = world
    with pytest.raises(
        ConfigError, match=r"format 'laion'.*coco_captions.*img2dataset_webdataset.*webvid.*x2vlm_image_text"
    ):
        load_sources([{"format": "laion", "dataset": "x"}])
    entry = {
        "format": "karpathy",
        "dataset": "coco",
        "annotations": str(root / "coco/dataset_coco.json"),
        "images": str(root / "coco"),
    }
    with pytest.raises(
        ConfigError,
        match=r"unknown key\(s\) \['image_root'\].*valid keys are \['allow_images_outside', 'annotations', 'dataset', 'format', 'images'\]",
    ):
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
    entry = {
        "format": "vqa_v2",
        "dataset": "vqa",
        "questions": str(missing),
        "annotations": str(root / "vqa/v2_mscoco_train2014_annotations.json"),
        "images": str(root / "coco/train2014"),
    }
    with pytest.raises(DataError, match=rf"sources\[0\]\.questions: file {re.escape(str(missing))} does not exist"):
        load_sources([entry])
    with pytest.raises(DataError, match="sources file .* does not exist"):
        load_sources(tmp_path / "sources.yaml")


def test_yaml_relative_paths_resolve_against_the_file(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    shutil.copytree(root / "vg", tmp_path / "vg")
    entry = {
        "format": "visual_genome",
        "dataset": "vg",
        "regions": "vg/region_descriptions.json",
        "image_data": "vg/image_data.json",
        "images": "vg",
    }
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
    entry = {
        "format": "coco_captions",
        "dataset": "c",
        "annotations": str(broken),
        "images": str(root / "coco/train2014"),
    }
    with pytest.raises(DataError, match=r"captions\.json: not valid JSON"):
        list(read_source(load_sources([entry])[0]))
    broken.write_text(json.dumps({"images": [{"id": 1}], "annotations": [{"image_id": 1, "caption": "a red circle"}]}))
    with pytest.raises(DataError, match=r"images\[0\] has no 'file_name' field"):
        list(read_source(load_sources([entry])[0]))


def _one(root: Path, fmt: str, **overrides) -> Source:
    entry = next(e for e in yaml.safe_load((root / "sources.yaml").read_text())["sources"] if e["format"] == fmt)
    return load_sources([{**entry, **overrides}])[0]


def test_visual_genome_objects_reader(world: tuple[Path, dict]) -> None:
    root, _ = world
    objects = {e["image_id"]: e["objects"] for e in json.loads((root / "vg/objects.json").read_text())}
    records = _records(root, "visual_genome_objects")
    assert len(records) == len(objects)
    for record in records:
        _check_common(record, "region_text", "pretrain_region_text", 1)
        assert record["key"].startswith("vgobj-")
        assert record["regions"] == [
            {"bbox": [o["x"], o["y"], o["w"], o["h"]], "caption": o["names"][0], "attributes": o["attributes"]}
            for o in objects[record["image_id"]]
        ]


def test_img2dataset_webdataset_reader_reads_each_tar_as_a_part(world: tuple[Path, dict]) -> None:
    root, _ = world
    source = _one(root, "img2dataset_webdataset")
    parts = source_parts(source)
    assert [Path(part).name for _, part in parts] == ["00000.tar", "00001.tar"]
    records = [r for s, part in parts for r in read_source(s, part)]
    assert records == list(read_source(source))
    with tarfile.open(parts[0][1]) as tar:
        first = next(r for r in records if r["image_id"] == "000000000")
        assert first["captions"] == [tar.extractfile("000000000.txt").read().decode()]
        assert read_input(first["image_paths"][0])[0] == tar.extractfile("000000000.jpg").read()
    for record in records:
        _check_common(record, "image_text", "pretrain_image_text", 1)
        assert record["key"] == f"img2dataset-webdataset-{record['image_id']}"


def test_img2dataset_files_reader_keeps_failed_downloads_as_rejects(world: tuple[Path, dict], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, _ = world
    records = _records(root, "img2dataset_files")
    for record in records:
        _check_common(record, "image_text", "pretrain_image_text", 1)
        assert record["image_paths"][0].endswith(f"cc3m/files/00000/{record['image_id']}.jpg")
    copy = tmp_path / "cc"
    shutil.copytree(root / "cc3m/files", copy)
    rows = pq.read_table(copy / "00000.parquet").to_pylist()
    rows.append({**rows[0], "key": "000009999", "status": "failed_to_download", "error_message": "HTTP 404"})
    pq.write_table(pa.Table.from_pylist(rows), copy / "00000.parquet")
    (source,) = load_sources([{"format": "img2dataset_files", "dataset": "cc", "folder": str(copy)}])
    failed = [r for r in read_source(source) if r.get("reader_reject")]
    assert [(r["image_id"], r["reader_reject"]) for r in failed] == [("000009999", "download_failed")]
    (copy / "00000.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(DataError, match=r"00000\.parquet: not a readable parquet file"):
        list(read_source(source))


def test_caption_tsv_reader(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    lines = (root / "cc3m/tsv/Train_GCC-training.tsv").read_text().splitlines()
    records = _records(root, "caption_tsv")
    assert [r["captions"] for r in records] == [[line.split("\t")[0]] for line in lines]
    for record in records:
        _check_common(record, "image_text", "pretrain_image_text", 1)
    tsv = tmp_path / "cc.tsv"
    tsv.write_text("a red circle\thttps://example.invalid/a.jpg\n\n  \tlocal.jpg\n")
    (source,) = load_sources(
        [{"format": "caption_tsv", "dataset": "cc", "annotations": str(tsv), "images": str(tmp_path)}]
    )
    remote, local = list(read_source(source))
    assert (
        remote["reader_reject"] == "remote_url"
        and local["captions"] == [""]
        and local["image_paths"] == [str(tmp_path / "local.jpg")]
    )
    tsv.write_text("only one column\n")
    with pytest.raises(DataError, match=r"cc\.tsv: line 1 has 1 tab-separated columns, expected 2"):
        list(read_source(source))


def test_webvid_reader(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, manifest = world
    records = _records(root, "webvid")
    assert len(records) == manifest["datasets"]["pretrain_video_text"]["train"]
    rows = list(csv.DictReader(open(root / "webvid/results_2M_train.csv")))
    for record, row in zip(records, rows):
        _check_common(record, "video_text", "pretrain_video_text", 1)
        assert record["image_paths"][0].endswith(f"webvid/videos/{row['page_dir']}/{row['videoid']}.mp4")
        assert record["captions"] == [row["name"]] and record["video_id"] == row["videoid"]
    bad = tmp_path / "results.csv"
    bad.write_text("videoid,contentUrl\n1,x\n")
    (source,) = load_sources([{"format": "webvid", "dataset": "v", "annotations": str(bad), "videos": str(tmp_path)}])
    with pytest.raises(DataError, match=r"no column\(s\) \['name', 'page_dir'\]"):
        list(read_source(source))


def test_msrvtt_retrieval_and_qa_readers(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, manifest = world
    retrieval = _records(root, "msrvtt")
    assert _split_counts(retrieval) == manifest["datasets"]["video_retrieval"] and set(_split_counts(retrieval)) == {
        "train",
        "test",
    }
    sentences = json.loads((root / "msrvtt/annotation/test_videodatainfo.json").read_text())["sentences"]
    for record in retrieval:
        _check_common(record, "video_text", "video_retrieval", 1)
        assert (
            record["image_paths"][0].endswith(f"msrvtt/videos/all/{record['video_id']}.mp4")
            and len(record["captions"]) == 4
        )
        if record["split"] == "test":
            assert record["captions"] == [s["caption"] for s in sentences if s["video_id"] == record["video_id"]]
    qa = _records(root, "msrvtt_qa")
    assert _split_counts(qa) == manifest["datasets"]["video_qa"]
    for record in qa:
        _check_common(record, "video_qa", "video_qa", 1)
        assert record["question"].endswith("?") and record["answer"] and " " not in record["answer"]
    # ClipBERT's json-lines layout of MSRVTT-QA reads the same.
    lines = tmp_path / "train.jsonl"
    original = json.loads((root / "msrvtt_qa/train_qa.json").read_text())
    lines.write_text(
        "".join(
            json.dumps(
                {
                    "video_id": f"video{q['video_id']}",
                    "question": q["question"],
                    "answer": q["answer"],
                    "answer_type": "what",
                }
            )
            + "\n"
            for q in original
        )
    )
    (source,) = load_sources(
        [
            {
                "format": "msrvtt_qa",
                "dataset": "video_qa",
                "annotations": str(lines),
                "videos": str(root / "msrvtt/videos/all"),
            }
        ]
    )
    clipbert = list(read_source(source))
    train = [r for r in qa if r["split"] == "train"]
    assert [(r["video_id"], r["question"], r["answer"]) for r in clipbert] == [
        (r["video_id"], r["question"], r["answer"]) for r in train
    ]
    assert {r["answer_type"] for r in clipbert} == {"what"}


def test_x2vlm_json_lines_readers(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, manifest = world
    image_text = _records(root, "x2vlm_image_text")
    plain = [r for r in image_text if r["dataset"] == "pretrain_image_text"]
    multilingual = [r for r in image_text if r["dataset"] == "pretrain_multilingual"]
    assert len(multilingual) == manifest["datasets"]["pretrain_multilingual"]["train"]
    lines = (root / "x2vlm/image_text/part-00000.jsonl").read_text().splitlines()
    for record, line in zip(plain, lines):
        _check_common(record, "image_text", "pretrain_image_text", 1)
        entry = json.loads(line)
        assert record["captions"] == [entry["desc"]] and "caption_languages" not in record
        assert read_input(record["image_paths"][0])[0] == base64.b64decode(entry["binary"])
    for record in multilingual:
        assert record["caption_languages"] == ["en", "xx", "en", "xx"] and len(record["captions"]) == 4
    regions = _records(root, "x2vlm_region_text")
    for record, line in zip(regions, (root / "x2vlm/region_text/part-00000.jsonl").read_text().splitlines()):
        _check_common(record, "region_text", "pretrain_region_text", 1)
        entry = json.loads(line)
        assert [(r["bbox"], r["caption"], r["attributes"]) for r in record["regions"]] == [
            (e["bb"], e["caption"], [e["attributes"]]) for e in entry["elems"]
        ]
        assert record["captions"] == [entry["caption"]]

    # is_image_rpath: the image field is a path next to the file; other field names are options.
    _, jpeg = next((p, p.read_bytes()) for p in sorted((root / "coco/train2014").glob("*.jpg")))
    (tmp_path / "img.jpg").write_bytes(jpeg)
    part = tmp_path / "parts" / "part-1.jsonl"
    part.parent.mkdir()
    part.write_text(json.dumps({"image": "../img.jpg", "text": ["a", "b"]}) + "\n")
    (source,) = load_sources(
        [
            {
                "format": "x2vlm_image_text",
                "dataset": "d",
                "data": str(tmp_path / "parts"),
                "image_key": "image",
                "caption_key": "text",
                "image_is_path": True,
                "allow_images_outside": True,
            }
        ]
    )
    (record,) = read_source(source)
    assert record["captions"] == ["a", "b"] and load_and_validate(record["image_paths"][0])[1] is None
    assert "reader_reject" not in record  # ../img.jpg leaves the data folder: allowed here, explicitly
    assert record["key"] == "x2vlm-parts-part-1-000000001"
    (source,) = load_sources([{"format": "x2vlm_image_text", "dataset": "d", "data": str(part)}])
    with pytest.raises(DataError, match=r"part-1\.jsonl: line 1 has no 'desc' field; set caption_key"):
        list(read_source(source))
    with pytest.raises(ConfigError, match=r"image_is_path: expected a bool, got 'yes'"):
        load_sources([{"format": "x2vlm_image_text", "dataset": "d", "data": str(part), "image_is_path": "yes"}])


def test_vqa_test_dev_questions_without_annotations_read_as_unanswered_records(tmp_path: Path) -> None:
    # test-dev2015 publishes questions only, and its images are the test2015 files.
    questions = {
        "info": {},
        "license": {},
        "data_type": "mscoco",
        "data_subtype": "test-dev2015",
        "task_type": "Open-Ended",
        "questions": [{"image_id": 7, "question": "What shape is it?", "question_id": 7000}],
    }
    (tmp_path / "v2_OpenEnded_mscoco_test-dev2015_questions.json").write_text(json.dumps(questions))
    (tmp_path / "test2015").mkdir()
    (source,) = load_sources(
        [
            {
                "format": "vqa_v2",
                "dataset": "vqa",
                "split": "test-dev",
                "images": str(tmp_path / "test2015"),
                "questions": str(tmp_path / "v2_OpenEnded_mscoco_test-dev2015_questions.json"),
            }
        ]
    )
    (record,) = read_source(source)
    assert record["split"] == "test-dev" and record["question"] == "What shape is it?" and record["question_id"] == 7000
    assert record["answers"] == [] and record["answer_scores"] == {} and "answer_type" not in record
    assert record["image_paths"] == [str(tmp_path / "test2015/COCO_test2015_000000000007.jpg")]
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['questions'\]"):
        load_sources([{"format": "vqa_v2", "dataset": "vqa", "images": str(tmp_path / "test2015")}])


def test_webvid_without_its_videos_folder_reads_every_row(world: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = world
    # A partial download: the csv is there, the videos folder not yet. Each row becomes a missing_file reject later.
    (source,) = load_sources(
        [
            {
                "format": "webvid",
                "dataset": "v",
                "annotations": str(root / "webvid/results_2M_train.csv"),
                "videos": str(tmp_path / "videos"),
            }
        ]
    )
    records = list(read_source(source))
    assert len(records) == len(list(csv.DictReader(open(root / "webvid/results_2M_train.csv")))) > 0
    assert all(r["image_paths"][0].startswith(str(tmp_path / "videos") + "/") for r in records)


def test_img2dataset_parquet_without_its_image_folder_fails_with_one_line(
    world: tuple[Path, dict], tmp_path: Path
) -> None:
    root, _ = world
    copy = tmp_path / "files"
    copy.mkdir()
    shutil.copyfile(root / "cc3m/files/00000.parquet", copy / "00000.parquet")  # the listing, not its 00000/ folder
    (source,) = load_sources([{"format": "img2dataset_files", "dataset": "cc", "folder": str(copy)}])
    with pytest.raises(DataError) as error:
        list(read_source(source))
    assert "\n" not in str(error.value)
    assert re.search(
        r"00000\.parquet: no image folder 00000/ beside it; img2dataset's files layout is 00000\.parquet \+ 00000/<key>\.jpg",
        str(error.value),
    )


def test_every_listed_image_is_a_record_even_without_captions_or_usable_boxes(tmp_path: Path) -> None:
    # COCO: an image listed with no caption; Visual Genome: an image whose only box has no area, one with no regions.
    coco = {
        "images": [
            {"id": 1, "file_name": "COCO_val2014_000000000001.jpg", "width": 120, "height": 90},
            {"id": 2, "file_name": "COCO_val2014_000000000002.jpg", "width": 120, "height": 90},
        ],
        "annotations": [{"id": 10, "image_id": 1, "caption": "a red square"}],
    }
    (tmp_path / "captions_val2014.json").write_text(json.dumps(coco))
    image_data = [
        {
            "image_id": i,
            "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg",
            "width": 120,
            "height": 90,
            "coco_id": None,
            "flickr_id": None,
        }
        for i in (1, 2)
    ]
    regions = [
        {
            "id": 1,
            "regions": [{"region_id": 5, "image_id": 1, "phrase": "a dot", "x": 3, "y": 3, "width": 0, "height": 4}],
        },
        {"id": 2, "regions": []},
    ]
    (tmp_path / "image_data.json").write_text(json.dumps(image_data))
    (tmp_path / "region_descriptions.json").write_text(json.dumps(regions))
    (tmp_path / "images").mkdir()
    sources = load_sources(
        [
            {
                "format": "coco_captions",
                "dataset": "c",
                "split": "val",
                "annotations": str(tmp_path / "captions_val2014.json"),
                "images": str(tmp_path / "images"),
            },
            {
                "format": "visual_genome",
                "dataset": "r",
                "regions": str(tmp_path / "region_descriptions.json"),
                "image_data": str(tmp_path / "image_data.json"),
                "images": str(tmp_path / "images"),
            },
        ]
    )
    coco_records = list(read_source(sources[0]))
    assert [(r["image_id"], r["captions"], r.get("reader_reject")) for r in coco_records] == [
        (1, ["a red square"], None),
        (2, [], "no_caption"),
    ]
    vg_records = list(read_source(sources[1]))
    assert [(r["image_id"], r["regions"]) for r in vg_records] == [
        (1, [{"bbox": [3.0, 3.0, 0.0, 4.0], "caption": "a dot"}]),
        (2, []),
    ]
