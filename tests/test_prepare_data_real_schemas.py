"""The prepare-data job on tiny datasets laid out as the public downloads are, with the trial's defects planted.

COCO captions with an image listed without captions, Visual Genome regions/objects with boxes off
and outside their 120x90 images, RefCOCO+ refs(unc).p + instances.json whose only testA ref points
outside its image, a question-only VQA v2 test-dev split, a WebVid csv without its videos folder, and
a CC3M TSV whose paths repeat the images folder (the README example's mistake).
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import random
from pathlib import Path

import pytest
from PIL import Image

from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.dataprep.beam_job import run_prepare_data
from x2vlm_core.errors import ConfigError, DataError

pytestmark = [pytest.mark.slow, pytest.mark.beam]

WIDTH, HEIGHT = 120, 90


def _jpeg(path: Path, seed: int) -> None:
    # Noise of its own per image: equal pixels would be rejected as duplicates.
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (WIDTH, HEIGHT), bytes(rng.randrange(256) for _ in range(WIDTH * HEIGHT * 3))).save(
        path, format="JPEG"
    )


def _json(path: Path, data: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def _coco(root: Path) -> dict:
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "width": WIDTH, "height": HEIGHT} for i in (1, 2, 3)]
    for i in (1, 2, 3):
        _jpeg(root / "coco/val2014" / images[i - 1]["file_name"], i)
    annotations = [
        {"id": 10 + i, "image_id": i, "caption": f"a noisy picture number {i}"} for i in (1, 2)
    ]  # 3: no caption
    return {
        "format": "coco_captions",
        "dataset": "pretrain_image_text",
        "split": "val",
        "annotations": _json(
            root / "coco/annotations/captions_val2014.json", {"images": images, "annotations": annotations}
        ),
        "images": str(root / "coco/val2014"),
    }


def _visual_genome(root: Path) -> list[dict]:
    for i in (1, 2):
        _jpeg(root / f"vg/VG_100K/{i}.jpg", 100 + i)
    image_data = _json(
        root / "vg/image_data.json",
        [
            {
                "image_id": i,
                "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg",
                "width": WIDTH,
                "height": HEIGHT,
                "coco_id": None,
                "flickr_id": None,
            }
            for i in (1, 2)
        ],
    )

    def region(rid: int, image: int, phrase: str, x: int, y: int, w: int, h: int) -> dict:
        return {"region_id": rid, "image_id": image, "phrase": phrase, "x": x, "y": y, "width": w, "height": h}

    regions = [
        {
            "id": 1,
            "regions": [
                region(1, 1, "the whole scene", 0, 0, 500, 500),
                region(2, 1, "a corner", 100, 70, 30, 25),
                region(3, 1, "a patch", 10, 10, 20, 20),
            ],
        },
        {"id": 2, "regions": [region(4, 2, "a line", 5, 5, 0, 30), region(5, 2, "a dot", 5, 5, 10, 0)]},
    ]
    objects = [
        {
            "image_id": 1,
            "objects": [
                {"object_id": 7, "x": 60, "y": 40, "w": 80, "h": 20, "names": ["bar"]},
                {"object_id": 8, "x": 10, "y": 10, "w": 5, "h": 5, "names": ["speck"]},
            ],
        },
        {"image_id": 2, "objects": [{"object_id": 9, "x": 300, "y": 300, "w": 10, "h": 10, "names": ["ghost"]}]},
    ]
    return [
        {
            "format": "visual_genome",
            "dataset": "pretrain_region_text",
            "regions": _json(root / "vg/region_descriptions.json", regions),
            "image_data": image_data,
            "images": str(root / "vg"),
        },
        {
            "format": "visual_genome_objects",
            "dataset": "pretrain_region_text",
            "objects": _json(root / "vg/objects.json", objects),
            "image_data": image_data,
            "images": str(root / "vg"),
        },
    ]


def _refcoco(root: Path) -> dict:
    for i in (11, 12):
        _jpeg(root / f"coco/train2014/COCO_train2014_{i:012d}.jpg", i)
    instances = {
        "images": [
            {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": WIDTH, "height": HEIGHT} for i in (11, 12)
        ],
        "annotations": [
            {"id": 21, "image_id": 11, "bbox": [90.0, 10.0, 40.0, 30.0], "category_id": 1},
            {"id": 22, "image_id": 12, "bbox": [110.0, 80.0, 60.0, 60.0], "category_id": 1},
        ],
    }
    refs = [
        {
            "ref_id": 31,
            "ann_id": 21,
            "image_id": 11,
            "split": "train",
            "file_name": "COCO_train2014_000000000011_21.jpg",
            "sentences": [{"raw": "right square", "sent": "right square", "tokens": ["right", "square"], "sent_id": 1}],
        },
        {
            "ref_id": 32,
            "ann_id": 22,
            "image_id": 12,
            "split": "testA",
            "file_name": "COCO_train2014_000000000012_22.jpg",
            "sentences": [
                {"raw": "bottom corner", "sent": "bottom corner", "tokens": ["bottom", "corner"], "sent_id": 2}
            ],
        },
    ]
    (root / "refcoco+").mkdir(parents=True, exist_ok=True)
    (root / "refcoco+/refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return {
        "format": "refcoco",
        "dataset": "grounding",
        "refs": str(root / "refcoco+/refs(unc).p"),
        "instances": _json(root / "refcoco+/instances.json", instances),
        "images": str(root / "coco/train2014"),
    }


def _vqa_test_dev(root: Path) -> dict:
    _jpeg(root / "coco/test2015/COCO_test2015_000000000041.jpg", 41)
    questions = {
        "info": {},
        "license": {},
        "data_type": "mscoco",
        "data_subtype": "test-dev2015",
        "task_type": "Open-Ended",
        "questions": [
            {"image_id": 41, "question": "What is shown?", "question_id": 41000},
            {"image_id": 41, "question": "Is it noisy?", "question_id": 41001},
        ],
    }
    return {
        "format": "vqa_v2",
        "dataset": "vqa",
        "split": "test-dev",
        "images": str(root / "coco/test2015"),
        "questions": _json(root / "vqa/v2_OpenEnded_mscoco_test-dev2015_questions.json", questions),
    }


def _webvid_without_videos(root: Path) -> dict:
    path = root / "webvid/results_2M_train.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
        writer.writerow(["1000000001", "https://example.invalid/1.mp4", "PT00H00M05S", "000001_000050", "a clip"])
    return {
        "format": "webvid",
        "dataset": "pretrain_video_text",
        "annotations": str(path),
        "videos": str(root / "webvid/videos"),
    }


def _cc3m_tsv_with_doubled_folder(root: Path) -> dict:
    _jpeg(root / "cc3m/images/00000000.jpg", 51)
    (root / "cc3m/Train_GCC-training.tsv").write_text("a noisy web picture\timages/00000000.jpg\n")
    return {
        "format": "caption_tsv",
        "dataset": "pretrain_image_text",
        "annotations": str(root / "cc3m/Train_GCC-training.tsv"),
        "images": str(root / "cc3m/images"),
    }


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("raw")
    sources = [_coco(root), *_visual_genome(root), _refcoco(root), _vqa_test_dev(root), _webvid_without_videos(root)]
    return {"root": root, "sources": sources}


def _no_prism(monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.runners.portability import prism_runner

    def refuse(*args, **kwargs):
        raise AssertionError("a local run must not start (or download) the Prism runner")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    monkeypatch.setattr(prism_runner.PrismRunner, "__init__", refuse)


def test_a_run_on_the_real_schemas_accounts_for_every_item_box_and_split(
    trial: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    _no_prism(monkeypatch)
    out = tmp_path / "out"
    summary = run_prepare_data(trial["sources"], out, shard_size=4, allow_empty_sources=True)
    stats = json.loads((out / "stats.json").read_text())
    rejects = {
        (r["dataset"], r["key"]): r["reason"] for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())
    }
    # Finding 2: the captionless COCO image and the VG image whose boxes are all degenerate are read and rejected.
    assert rejects == {
        ("pretrain_image_text", "coco-000000000003"): "no_caption",
        ("pretrain_region_text", "vg-000000000002"): "no_usable_box",
        ("pretrain_region_text", "vgobj-000000000002"): "no_usable_box",
        ("grounding", "refcoco-000000000032"): "box_mostly_outside",
        ("pretrain_video_text", "webvid-1000000001"): "missing_file",  # finding 9: no videos folder, no config error
    }
    assert (
        stats["read"]["pretrain_image_text"]["coco_captions"]["val"] == 3
        and stats["records"]["read"] == summary["read"] == 12
    )
    assert summary["read"] == summary["total"] + summary["rejected"] == 7 + 5
    # Finding 1: the [0, 0, 500, 500] region is dropped, the one over the edge clipped, both counted per reason.
    assert stats["boxes"] == {
        "grounding": {"clipped": 1, "mostly_outside": 1},
        "pretrain_region_text": {"clipped": 2, "degenerate": 2, "mostly_outside": 2},
    }
    region_samples = {
        s["key"]: s["meta"] for s in iter_shard_samples(list_shards(out, "pretrain_region_text", "train"))
    }
    assert region_samples["vg-000000000001"]["regions"] == [
        {"bbox": [100.0, 70.0, 20.0, 20.0], "caption": "a corner"},
        {"bbox": [10.0, 10.0, 20.0, 20.0], "caption": "a patch"},
    ]
    assert region_samples["vgobj-000000000001"]["regions"][0]["bbox"] == [60.0, 40.0, 60.0, 20.0]
    (ref,) = iter_shard_samples(list_shards(out, "grounding", "train"))
    assert ref["meta"]["bbox"] == [90.0, 10.0, 30.0, 30.0]
    # Finding 4: testA lost its only ref; stats.json and the log say so.
    assert stats["empty_splits"] == {
        "grounding": {"testA": {"read": 1, "top_reject": "box_mostly_outside (1)"}},
        "pretrain_video_text": {"train": {"read": 1, "top_reject": "missing_file (1)"}},
    }
    assert "grounding/testA is empty" in caplog.text
    # Finding 8: the question-only test-dev split is prepared, without answers.
    questions = list(iter_shard_samples(list_shards(out, "vqa", "test-dev")))
    assert [q["meta"]["question_id"] for q in questions] == [41000, 41001] and all(
        q["meta"]["answers"] == [] for q in questions
    )
    assert read_index(out)["datasets"]["vqa"]["test-dev"]["count"] == 2


def test_a_source_that_writes_nothing_fails_naming_it_and_its_top_reason(trial: dict, tmp_path: Path) -> None:
    sources = [_coco(trial["root"]), _cc3m_tsv_with_doubled_folder(trial["root"])]
    with pytest.raises(DataError) as error:
        run_prepare_data(sources, tmp_path / "out", shard_size=4)
    message = str(error.value)
    assert "\n" not in message
    assert (
        "sources[1] (caption_tsv -> pretrain_image_text/train) wrote no samples: read 1, rejected 1, mostly missing_file (1)"
        in message
    )
    assert "relative to the source's images/videos folder" in message and "--allow-empty-sources" in message
    assert (
        not (tmp_path / "out/index.json").exists() and (tmp_path / "out/rejects.jsonl").exists()
    )  # incomplete, inspectable


def test_the_output_is_a_whole_committed_by_its_index(trial: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    coco, refcoco = _coco(trial["root"]), _refcoco(trial["root"])
    first = run_prepare_data([coco, refcoco], out, shard_size=1)
    old_files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "grounding/train-00000.tar" in old_files
    with pytest.raises(ConfigError, match="already holds a complete prepare-data output"):
        run_prepare_data([coco], out)
    # A failed rerun (a source that writes nothing) leaves the complete output as it was.
    with pytest.raises(DataError, match="wrote no samples"):
        run_prepare_data([coco, _cc3m_tsv_with_doubled_folder(trial["root"])], out, overwrite=True)
    assert read_index(out) == {name: first[name] for name in read_index(out)}
    # Its files wait in a hidden build folder, for their rejects.jsonl; the next run clears it.
    visible = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.relative_to(out).parts[0].startswith(".")
    }
    assert visible == old_files and any(p.name.startswith(".prepare-build-") for p in out.iterdir())
    for splits in read_index(out)["datasets"].values():
        for entry in splits.values():
            for shard in entry["shards"]:
                assert hashlib.sha256((out / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]
    # --overwrite with fewer sources: the other dataset's shards go, and only after the new index.
    second = run_prepare_data([coco], out, shard_size=4, overwrite=True)
    assert list(second["datasets"]) == ["pretrain_image_text"]
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == {"index.json", "stats.json", "rejects.jsonl", "pretrain_image_text/val-00000.tar"}
    # An incomplete output (no index: a step that died) is cleared and rebuilt without --overwrite; other files stay.
    (out / "index.json").unlink()
    (out / "grounding").mkdir(exist_ok=True)
    (out / "grounding/testA-00003.tar").write_bytes(b"half")
    (out / "notes.txt").write_text("mine")
    third = run_prepare_data([coco], out, shard_size=4)
    assert third["datasets"] == second["datasets"]
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == files | {"notes.txt"}


def test_prepare_data_logs_warnings_and_its_progress_unless_verbose() -> None:
    import logging

    from x2vlm_core.cli import build_parser, configure_logging

    root, progress = logging.getLogger(), logging.getLogger("x2vlm_core.dataprep")
    saved = root.level, progress.level
    try:
        configure_logging(build_parser().parse_args(["prepare-data", "--sources", "s.yaml", "--output", "o"]))
        assert not logging.getLogger("apache_beam").isEnabledFor(logging.INFO) and root.isEnabledFor(logging.WARNING)
        assert logging.getLogger("x2vlm_core.dataprep.beam_job").isEnabledFor(logging.INFO)
        configure_logging(
            build_parser().parse_args(["prepare-data", "--sources", "s.yaml", "--output", "o", "--verbose"])
        )
        assert logging.getLogger("apache_beam").isEnabledFor(logging.INFO)
        configure_logging(
            build_parser().parse_args(["evaluate", "--task", "vqa", "--model", "m", "--shards", "s", "--output", "o"])
        )
        assert logging.getLogger("x2vlm_core.train").isEnabledFor(logging.INFO)  # other stages keep INFO
    finally:
        root.setLevel(saved[0])
        progress.setLevel(saved[1])


def test_evaluate_names_the_expected_split_that_is_missing(caplog) -> None:
    from x2vlm_core.evaluation.run import evaluation_splits

    available = {"val": {}, "testB": {}}  # testA ended empty in prepare-data
    assert evaluation_splits(("val", "testA", "testB"), None, available, "grounding", "shards") == ["val", "testB"]
    assert "'grounding' in shards has no split ['testA'] of the task's evaluation splits" in caplog.text
    with pytest.raises(DataError, match=r"has no split \['testA'\]"):
        evaluation_splits(("val", "testA", "testB"), ["testA"], available, "grounding", "shards")
