"""The shapes world: deterministic, in the real file formats, with counts that match its manifest."""

from __future__ import annotations

import json
import pickle
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from x2vlm_core.data.synthetic import COLOURS, generate_shapes_world
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
    assert manifest["datasets"]["pretrain_image_text"] == {"train": len(train["images"]), "val": len(val["images"])}

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
    assert all({"region_id", "image_id", "phrase", "x", "y", "width", "height"} <= set(r) for e in regions for r in e["regions"])
    assert all({"object_id", "x", "y", "w", "h", "names"} <= set(o) for e in objects for o in e["objects"])
    assert all((root / "vg/VG_100K" / f"{i['image_id']}.jpg").is_file() for i in image_data)
    assert manifest["datasets"]["pretrain_region_text"] == {"train": len(regions)}

    vqa_counts = {}
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        questions = json.loads((root / f"vqa/v2_OpenEnded_mscoco_{folder}_questions.json").read_text())["questions"]
        annotations = json.loads((root / f"vqa/v2_mscoco_{folder}_annotations.json").read_text())["annotations"]
        assert [q["question_id"] for q in questions] == [a["question_id"] for a in annotations]
        for annotation in annotations:
            assert {"question_id", "image_id", "question_type", "answer_type", "multiple_choice_answer", "answers"} <= set(annotation)
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
    assert {s["format"] for s in sources} == {"coco_captions", "karpathy", "visual_genome", "vqa_v2", "nlvr2", "refcoco"}
    for source in sources:
        for field, value in source.items():
            if field not in ("format", "dataset", "split"):
                assert Path(value).is_absolute() and Path(value).exists(), (field, value)


def test_generation_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    manifest = generate_shapes_world(tmp_path, num_images=320)
    assert time.perf_counter() - start < 10
    assert manifest["datasets"]["pretrain_image_text"]["train"] + manifest["datasets"]["pretrain_image_text"]["val"] == 320


def test_rejects_sizes_it_cannot_draw(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image_size=16"):
        generate_shapes_world(tmp_path, num_images=4, image_size=16)
    with pytest.raises(ConfigError, match="num_images=0"):
        generate_shapes_world(tmp_path, num_images=0)
