"""The shapes world: deterministic, in the real file formats, with counts that match its manifest."""

from __future__ import annotations

import base64
import csv
import io
import json
import pickle
import tarfile
import time
from collections import Counter
from pathlib import Path

import av
import pytest
import yaml
from PIL import Image

from x2vlm_core.data.sources import SOURCE_FORMATS, load_sources
from x2vlm_core.data.synthetic import COLOURS, DIRECTIONS, VIDEO_FRAMES, generate_shapes_world, translate
from x2vlm_core.data.video import load_video_frames
from x2vlm_core.errors import ConfigError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("world")
    return root, generate_shapes_world(root, num_images=40, seed=3)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_shapes_world(first, num_images=24, seed=7)
    generate_shapes_world(second, num_images=24, seed=7)
    generate_shapes_world(other, num_images=24, seed=8)
    files_first, files_second, files_other = _files(first), _files(second), _files(other)

    assert files_first.keys() == files_second.keys()
    for name, data in files_first.items():
        if name == "sources.yaml":  # holds absolute paths, so it differs by exactly the root folder
            data = data.replace(str(first).encode(), b"ROOT")
            assert data == files_second[name].replace(str(second).encode(), b"ROOT")
        else:
            assert data == files_second[name], name
    assert files_first["coco/dataset_coco.json"] != files_other["coco/dataset_coco.json"]
    assert files_first["refcoco+/refs(unc).p"] != files_other["refcoco+/refs(unc).p"]
    shared_images = [n for n in files_first if n.endswith(".jpg") and n in files_other]
    assert shared_images and any(files_first[n] != files_other[n] for n in shared_images)


def test_coco_and_karpathy_have_the_real_schema(world: tuple[Path, dict]) -> None:
    root, manifest = world
    train = json.loads((root / "coco/annotations/captions_train2014.json").read_text())
    val = json.loads((root / "coco/annotations/captions_val2014.json").read_text())
    for captions, folder in ((train, "train2014"), (val, "val2014")):
        assert {"info", "images", "annotations"} <= set(captions)
        for image in captions["images"]:
            assert {"id", "file_name", "width", "height"} <= set(image)
            assert image["file_name"] == f"COCO_{folder}_{image['id']:012d}.jpg"
            assert Image.open(root / "coco" / folder / image["file_name"]).size == (image["width"], image["height"])
        per_image = Counter(annotation["image_id"] for annotation in captions["annotations"])
        assert set(per_image.values()) == {2}
        assert all({"id", "image_id", "caption"} <= set(a) for a in captions["annotations"])
    # COCO val is all of pretrain_image_text/val; train also holds the web-scale formats (checked below).
    assert manifest["datasets"]["pretrain_image_text"]["val"] == len(val["images"])

    karpathy = json.loads((root / "coco/dataset_coco.json").read_text())
    assert karpathy["dataset"] == "coco"
    for entry in karpathy["images"]:
        assert {"filepath", "filename", "imgid", "cocoid", "split", "sentences", "sentids"} <= set(entry)
        assert len(entry["sentences"]) == 5
        assert all({"raw", "tokens", "sentid", "imgid"} <= set(s) for s in entry["sentences"])
        assert (root / "coco" / entry["filepath"] / entry["filename"]).is_file()
    splits = Counter(entry["split"] for entry in karpathy["images"])
    assert dict(splits) == manifest["datasets"]["retrieval"]
    assert splits["train"] > splits["val"] > 0 and splits["test"] > 0


def test_visual_genome_vqa_nlvr2_refcoco_have_the_real_schema(world: tuple[Path, dict]) -> None:
    root, manifest = world
    image_data = json.loads((root / "vg/image_data.json").read_text())
    regions = json.loads((root / "vg/region_descriptions.json").read_text())
    objects = json.loads((root / "vg/objects.json").read_text())
    assert all({"image_id", "width", "height", "url", "coco_id", "flickr_id"} <= set(i) for i in image_data)
    assert all(
        {"region_id", "image_id", "phrase", "x", "y", "width", "height"} <= set(r)
        for e in regions
        for r in e["regions"]
    )
    assert all({"object_id", "x", "y", "w", "h", "names"} <= set(o) for e in objects for o in e["objects"])
    assert all((root / "vg/VG_100K" / f"{i['image_id']}.jpg").is_file() for i in image_data)
    region_lines = (root / "x2vlm/region_text/part-00000.jsonl").read_text().splitlines()
    # Regions and objects of every VG image, plus the X²-VLM region json-lines.
    assert manifest["datasets"]["pretrain_region_text"] == {"train": len(regions) + len(objects) + len(region_lines)}

    vqa_counts = {}
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        questions = json.loads((root / f"vqa/v2_OpenEnded_mscoco_{folder}_questions.json").read_text())["questions"]
        annotations = json.loads((root / f"vqa/v2_mscoco_{folder}_annotations.json").read_text())["annotations"]
        assert [q["question_id"] for q in questions] == [a["question_id"] for a in annotations]
        for annotation in annotations:
            assert {
                "question_id",
                "image_id",
                "question_type",
                "answer_type",
                "multiple_choice_answer",
                "answers",
            } <= set(annotation)
            assert len(annotation["answers"]) == 10
            assert all({"answer", "answer_confidence", "answer_id"} <= set(a) for a in annotation["answers"])
        vqa_counts[split] = len(questions)
    assert manifest["datasets"]["vqa"] == vqa_counts

    nlvr2_counts, labels = {}, Counter()
    for split in ("train", "dev", "test1"):
        lines = [json.loads(line) for line in (root / f"nlvr2/{split}.json").read_text().splitlines()]
        for line in lines:
            assert {"identifier", "sentence", "label", "left_url", "right_url"} <= set(line)
            assert line["label"] in ("True", "False")
            pair = line["identifier"].rsplit("-", 1)[0]
            assert (root / f"nlvr2/images/{split}/{pair}-img0.png").is_file()
            assert (root / f"nlvr2/images/{split}/{pair}-img1.png").is_file()
            labels[line["label"]] += 1
        if lines:
            nlvr2_counts[split] = len(lines)
    assert manifest["datasets"]["nlvr2"] == nlvr2_counts
    assert labels["True"] == labels["False"]

    with open(root / "refcoco+/refs(unc).p", "rb") as handle:
        assert handle.read(2) == b"\x80\x02"  # pickle protocol 2, like the published file
    refs = pickle.loads((root / "refcoco+/refs(unc).p").read_bytes())
    instances = json.loads((root / "refcoco+/instances.json").read_text())
    assert isinstance(refs, list) and {"images", "annotations", "categories"} <= set(instances)
    keys = {"ref_id", "ann_id", "image_id", "split", "sentences", "category_id", "file_name", "sent_ids"}
    assert all(keys <= set(ref) for ref in refs)
    assert all({"sent", "raw", "tokens", "sent_id"} <= set(s) for ref in refs for s in ref["sentences"])
    assert len(refs) == len(instances["annotations"])  # one ref per shape
    assert dict(Counter(ref["split"] for ref in refs)) == manifest["datasets"]["grounding"]
    assert manifest["total"] == sum(sum(splits.values()) for splits in manifest["datasets"].values())


def test_boxes_are_where_the_shapes_are_drawn(world: tuple[Path, dict]) -> None:
    root, _ = world
    instances = json.loads((root / "refcoco+/instances.json").read_text())
    files = {image["id"]: image["file_name"] for image in instances["images"]}
    names = {c["id"]: c["name"] for c in instances["categories"]}
    refs = {ref["ann_id"]: ref for ref in pickle.loads((root / "refcoco+/refs(unc).p").read_bytes())}
    for annotation in instances["annotations"][:30]:
        x, y, w, h = annotation["bbox"]
        image = Image.open(root / "coco/train2014" / files[annotation["image_id"]]).convert("RGB")
        # A point surely inside the shape: triangles are wider near their base.
        inside = (x + w / 2, y + (2 * h / 3 if names[annotation["category_id"]] == "triangle" else h / 2))
        colour = refs[annotation["id"]]["sentences"][0]["raw"].split()[0]
        pixel = image.getpixel((int(inside[0]), int(inside[1])))
        assert max(abs(a - b) for a, b in zip(pixel, COLOURS[colour])) < 40, (annotation, pixel, colour)


def test_sources_yaml_points_at_the_generated_files(world: tuple[Path, dict]) -> None:
    root, _ = world
    sources = yaml.safe_load((root / "sources.yaml").read_text())["sources"]
    # Every format the readers know, but Multi30K and the X-VLM retrieval json (no shapes-world files yet).
    evaluation_only = {"multi30k", "retrieval_json"}
    assert {s["format"] for s in sources} == set(SOURCE_FORMATS) - evaluation_only
    for source in sources:
        for field, value in source.items():
            if field not in ("format", "dataset", "split", "caption_key"):
                assert Path(value).is_absolute() and Path(value).exists(), (field, value)


def test_sources_yaml_lists_every_file_the_writers_wrote(world: tuple[Path, dict]) -> None:
    # sources.yaml is assembled from what the format writers return: a file no entry names (itself or
    # by its folder) is one a writer wrote but did not report.
    root, _ = world
    listed = [Path(path) for source in load_sources(root / "sources.yaml") for path in source.paths.values()]
    written = [
        p for p in Path(root).resolve().rglob("*") if p.is_file() and p.name not in ("sources.yaml", "manifest.json")
    ]
    assert written
    assert [p for p in written if not any(p == path or path in p.parents for path in listed)] == []


def test_videos_are_real_clips_in_the_webvid_and_msrvtt_schemas(world: tuple[Path, dict]) -> None:
    root, manifest = world
    rows = list(csv.DictReader(open(root / "webvid/results_2M_train.csv", newline="")))
    assert list(rows[0]) == ["videoid", "contentUrl", "duration", "page_dir", "name"]
    assert manifest["datasets"]["pretrain_video_text"] == {"train": len(rows)}
    lengths = set()
    for row in rows:
        video = root / "webvid/videos" / row["page_dir"] / f"{row['videoid']}.mp4"
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "mpeg4" and (stream.width, stream.height) == (64, 64)
            frames = [frame.to_image() for frame in container.decode(video=0)]
        lengths.add(len(frames))
        assert VIDEO_FRAMES[0] <= len(frames) <= VIDEO_FRAMES[1]
        assert frames[0].tobytes() != frames[-1].tobytes()  # something moves
        assert any(direction in row["name"] for direction in DIRECTIONS)

    train = json.loads((root / "msrvtt/annotation/train_val_videodatainfo.json").read_text())
    test = json.loads((root / "msrvtt/annotation/test_videodatainfo.json").read_text())
    for info, split in ((train, "train"), (test, "test")):
        assert {"info", "videos", "sentences"} <= set(info)
        assert all(
            {"video_id", "split", "category", "url", "start time", "end time", "id"} <= set(v) and v["split"] == split
            for v in info["videos"]
        )
        assert all({"caption", "video_id", "sen_id"} <= set(s) for s in info["sentences"])
        assert all(
            load_video_frames(root / "msrvtt/videos/all" / f"{v['video_id']}.mp4", 3)[1] is None for v in info["videos"]
        )
    assert manifest["datasets"]["video_retrieval"] == {"train": len(train["videos"]), "test": len(test["videos"])}
    qa = {split: json.loads((root / f"msrvtt_qa/{split}_qa.json").read_text()) for split in ("train", "test")}
    assert manifest["datasets"]["video_qa"] == {split: len(items) for split, items in qa.items()}
    for items, info in ((qa["train"], train), (qa["test"], test)):
        ids = {int(v["video_id"][len("video") :]) for v in info["videos"]}
        assert all(
            {"id", "video_id", "question", "answer", "category_id"} <= set(q) and q["video_id"] in ids for q in items
        )
    answers = {q["answer"] for items in qa.values() for q in items}
    assert answers <= set(DIRECTIONS) | set(COLOURS) and answers & set(DIRECTIONS) and answers & set(COLOURS)


def test_web_scale_and_x2vlm_formats_have_the_real_schema(world: tuple[Path, dict]) -> None:
    import pyarrow.parquet as pq

    root, manifest = world
    counted = 0
    for tar_path in sorted((root / "cc3m/webdataset").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            names = tar.getnames()
            keys = sorted({name.split(".")[0] for name in names})
            assert names == [f"{key}.{ext}" for key in keys for ext in ("jpg", "txt", "json")]
            meta = json.loads(tar.extractfile(f"{keys[0]}.json").read())
            assert {"url", "caption", "key", "status", "width", "height"} <= set(meta) and meta["key"] == keys[0]
            counted += len(keys)
    table = pq.read_table(root / "cc3m/files/00000.parquet")
    assert {"key", "caption", "status", "url", "error_message"} <= set(table.column_names)
    for row in table.to_pylist():
        assert (root / "cc3m/files/00000" / f"{row['key']}.jpg").is_file() and row["status"] == "success"
    tsv = (root / "cc3m/tsv/Train_GCC-training.tsv").read_text().splitlines()
    assert all((root / "cc3m/tsv/images" / line.split("\t")[1]).is_file() for line in tsv)
    counted += table.num_rows + len(tsv)

    image_text = [json.loads(line) for line in (root / "x2vlm/image_text/part-00000.jsonl").read_text().splitlines()]
    assert all(set(entry) == {"binary", "desc"} for entry in image_text)
    Image.open(io.BytesIO(base64.b64decode(image_text[0]["binary"]))).load()
    regions = [json.loads(line) for line in (root / "x2vlm/region_text/part-00000.jsonl").read_text().splitlines()]
    assert all({"bb", "caption"} <= set(elem) and len(elem["bb"]) == 4 for entry in regions for elem in entry["elems"])
    counted += len(image_text)
    coco = manifest["datasets"]["pretrain_image_text"]
    train_coco = len(json.loads((root / "coco/annotations/captions_train2014.json").read_text())["images"])
    assert coco["train"] == train_coco + counted

    multilingual = [
        json.loads(line) for line in (root / "x2vlm/multilingual/part-00000.jsonl").read_text().splitlines()
    ]
    assert manifest["datasets"]["pretrain_multilingual"] == {"train": train_coco}
    english = {
        a["caption"] for a in json.loads((root / "coco/annotations/captions_train2014.json").read_text())["annotations"]
    }
    for entry in multilingual:
        for caption in entry["caption"]:
            assert (
                set(caption) == {"en", "xx"} and caption["en"] in english and caption["xx"] == translate(caption["en"])
            )
    # A real vocabulary: one word, one translation, none left in English.
    assert translate("a red circle and a red square").split()[1] == translate("red")
    assert not set(translate(" ".join(english)).split()) & set(" ".join(english).split())


def test_generation_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    manifest = generate_shapes_world(tmp_path, num_images=320)
    assert time.perf_counter() - start < 10
    assert sum(manifest["datasets"]["retrieval"].values()) == 320  # the Karpathy split lists every COCO image


def test_rejects_sizes_it_cannot_draw(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image_size=16"):
        generate_shapes_world(tmp_path, num_images=4, image_size=16)
    with pytest.raises(ConfigError, match="num_images=0"):
        generate_shapes_world(tmp_path, num_images=0)
