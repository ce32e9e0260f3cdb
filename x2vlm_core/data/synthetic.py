"""The "shapes world": a deterministic synthetic dataset in the real on-disk formats.

Every picture holds 1-3 coloured shapes (circle/square/triangle in red/green/blue/yellow)
at known, non-overlapping boxes on a plain background; every video (3-8 frames, MPEG-4 in MP4)
shows 1-2 shapes moving left, right, up or down. The generator writes, exactly as the real
datasets lay them out:

- COCO captions, the Karpathy split, Visual Genome regions and objects, VQA v2, NLVR2, RefCOCO+;
- Conceptual-Captions-style downloads: img2dataset webdataset tars, img2dataset parquet + image
  folders, and a ``caption<TAB>path`` TSV;
- the official X²-VLM json-lines (ImageTextJsonDataset ``binary``/``desc``, RegionTextJsonDataset
  ``elems``/``bb``) and a CCLM multilingual file: the COCO train captions with their translation
  into "shapes-speak" (language code ``xx``), a made-up language with its own vocabulary, and a
  WikiMatrix-style parallel TSV of English/shapes-speak caption pairs;
- WebVid (csv + videos), MSR-VTT retrieval (videodatainfo json) and MSRVTT-QA.

So the real readers and the real prepare-data job run on it and a tiny model can learn it on CPU.

Same arguments give byte-identical files: fixed JPEG quality, sorted JSON keys, no timestamps,
and every random choice drawn from string-seeded generators (independent of PYTHONHASHSEED).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import pickle
import random
import re
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from PIL import Image, ImageDraw

from x2vlm_core.errors import ConfigError

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 30),
}
SHAPE_KINDS = ("circle", "square", "triangle")
CATEGORY_IDS = {kind: index + 1 for index, kind in enumerate(SHAPE_KINDS)}
BACKGROUND = (235, 235, 235)
JPEG_QUALITY = 90
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
MIN_IMAGE_SIZE = 32

# Output dataset names used in sources.yaml and manifest.json: the names the stages read.
DATASET_NAMES = {
    "coco_captions": "pretrain_image_text",
    "karpathy": "retrieval",
    "visual_genome": "pretrain_region_text",
    "visual_genome_objects": "pretrain_region_text",
    "vqa_v2": "vqa",
    "nlvr2": "nlvr2",
    "refcoco": "grounding",
    "img2dataset_webdataset": "pretrain_image_text",
    "img2dataset_files": "pretrain_image_text",
    "caption_tsv": "pretrain_image_text",
    "x2vlm_image_text": "pretrain_image_text",
    "x2vlm_region_text": "pretrain_region_text",
    "webvid": "pretrain_video_text",
    "msrvtt": "video_retrieval",
    "msrvtt_qa": "video_qa",
}
MULTILINGUAL_DATASET = "pretrain_multilingual"
MULTILINGUAL_RETRIEVAL_DATASET = "multilingual_retrieval"
PARALLEL_DATASET = "pretrain_parallel_text"
PARALLEL_FILE = "parallel/WikiMatrix.en-xx.tsv"  # WikiMatrix names its language pair in the file name
SYNTHETIC_LANGUAGE = "xx"
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
VIDEO_FRAMES = (3, 8)  # fewest and most frames of a clip


@dataclass(frozen=True)
class Shape:
    colour: str
    kind: str
    box: tuple[int, int, int, int]  # x, y, w, h in pixels

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    shapes: tuple[Shape, ...]

    def position_of(self, shape: Shape) -> str:
        """Where the shape's centre lies, in words: 'on the left', 'at the top right', ..."""
        x, y, w, h = shape.box
        centre_x, centre_y = x + w / 2, y + h / 2
        horizontal = "left" if centre_x < self.width / 3 else "right" if centre_x > 2 * self.width / 3 else ""
        vertical = "top" if centre_y < self.height / 3 else "bottom" if centre_y > 2 * self.height / 3 else ""
        if horizontal and vertical:
            return f"at the {vertical} {horizontal}"
        if horizontal:
            return f"on the {horizontal}"
        if vertical:
            return f"at the {vertical}"
        return "in the middle"

    def has(self, colour: str, kind: str) -> bool:
        return any(shape.colour == colour and shape.kind == kind for shape in self.shapes)


class SceneSampler:
    """Draws random scenes, never the same one twice (so the dedup step finds no accidental duplicates)."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._seen: set[Scene] = set()

    def sample(self, width: int, height: int) -> Scene:
        while True:
            scene = self._draw(width, height)
            if scene not in self._seen:
                self._seen.add(scene)
                return scene

    def _draw(self, width: int, height: int) -> Scene:
        rng = self._rng
        combos = [(colour, kind) for colour in COLOURS for kind in SHAPE_KINDS]
        # Distinct colour+kind per scene, so "the red circle" always names one object.
        wanted = rng.sample(combos, rng.randint(1, 3))
        shorter = min(width, height)
        placed: list[Shape] = []
        for colour, kind in wanted:
            side = rng.randint(int(shorter * 0.22), int(shorter * 0.38))
            for _ in range(30):
                box = (rng.randint(1, width - side - 1), rng.randint(1, height - side - 1), side, side)
                if not any(_boxes_touch(box, other.box) for other in placed):
                    placed.append(Shape(colour, kind, box))
                    break
        return Scene(width, height, tuple(placed))


def _boxes_touch(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 2) -> bool:
    return not (
        a[0] + a[2] + gap <= b[0]
        or b[0] + b[2] + gap <= a[0]
        or a[1] + a[3] + gap <= b[1]
        or b[1] + b[3] + gap <= a[1]
    )


def render(scene: Scene) -> Image.Image:
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        x, y, w, h = shape.box
        fill = COLOURS[shape.colour]
        if shape.kind == "circle":
            draw.ellipse([x, y, x + w - 1, y + h - 1], fill=fill)
        elif shape.kind == "square":
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=fill)
        else:
            draw.polygon([(x + w / 2, y), (x, y + h - 1), (x + w - 1, y + h - 1)], fill=fill)
    return image


def _jpeg_bytes(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    render(scene).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _png_bytes(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    render(scene).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- captions


def _listing(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _shapes_word(count: int) -> str:
    return f"{NUMBER_WORDS[count]} shape" + ("" if count == 1 else "s")


def _caption_plain(scene: Scene, order: list[Shape]) -> str:
    return _listing([f"a {shape.name}" for shape in order])


def _caption_counted(scene: Scene, order: list[Shape]) -> str:
    return f"{_shapes_word(len(order))}: " + _listing([f"a {shape.name}" for shape in order])


def _caption_positions(scene: Scene, order: list[Shape]) -> str:
    return _listing([f"a {shape.name} {scene.position_of(shape)}" for shape in order])


def _caption_there_is(scene: Scene, order: list[Shape]) -> str:
    return "there is " + _listing([f"a {shape.name}" for shape in order])


def _caption_left_to_right(scene: Scene, order: list[Shape]) -> str:
    if len(order) == 1:
        return f"a single {order[0].name}"
    by_x = sorted(order, key=lambda shape: (shape.box[0], shape.box[1]))
    return "from left to right: " + _listing([f"a {shape.name}" for shape in by_x])


def _caption_picture(scene: Scene, order: list[Shape]) -> str:
    return "a picture of " + _listing([f"a {shape.name}" for shape in order]) + " on a grey background"


CAPTION_TEMPLATES: tuple[Callable[[Scene, list[Shape]], str], ...] = (
    _caption_plain,
    _caption_counted,
    _caption_positions,
    _caption_there_is,
    _caption_left_to_right,
    _caption_picture,
)


def _captions(scene: Scene, rng: random.Random, count: int) -> list[str]:
    captions = []
    for template in rng.sample(CAPTION_TEMPLATES, count):
        order = list(scene.shapes)
        rng.shuffle(order)
        captions.append(template(scene, order))
    return captions


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


# ---------------------------------------------------------------- writers


class _World:
    """Collects the files of one generated world and the record counts each source yields."""

    def __init__(self, out_dir: Path, seed: int, image_size: int):
        self.root = out_dir
        self.size = image_size
        self.seed = seed
        self.sampler = SceneSampler(self.rng("scenes"))
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def rng(self, purpose: str) -> random.Random:
        return random.Random(f"x2vlm-shapes-world:{self.seed}:{purpose}")

    def write_bytes(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_json(self, relative: str, obj: Any) -> Path:
        return self.write_bytes(relative, _json_bytes(obj))


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class _CocoImage:
    image_id: int
    folder: str  # train2014 | val2014
    file_name: str
    karpathy_split: str
    scene: Scene
    captions: tuple[str, ...]  # 5; COCO keeps the first 2


def _karpathy_split(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.65:
        return "train"
    if draw < 0.70:
        return "restval"
    return "val" if draw < 0.85 else "test"


def _write_coco(world: _World, num_images: int) -> list[_CocoImage]:
    rng = world.rng("coco")
    images = []
    for index in range(num_images):
        image_id = index + 1
        split = _karpathy_split(rng)
        # Like the real Karpathy split: train comes from train2014, the rest from val2014.
        folder = "train2014" if split == "train" else "val2014"
        scene = world.sampler.sample(world.size, world.size)
        file_name = f"COCO_{folder}_{image_id:012d}.jpg"
        world.write_bytes(f"coco/{folder}/{file_name}", _jpeg_bytes(scene))
        images.append(_CocoImage(image_id, folder, file_name, split, scene, tuple(_captions(scene, rng, 5))))

    annotation_id = 0
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        (world.root / "coco" / folder).mkdir(parents=True, exist_ok=True)
        chosen = [image for image in images if image.folder == folder]
        annotations = []
        for image in chosen:
            for caption in image.captions[:2]:
                annotation_id += 1
                annotations.append({"id": annotation_id, "image_id": image.image_id, "caption": caption})
        world.write_json(
            f"coco/annotations/captions_{folder}.json",
            {
                "info": {"description": "x2vlm synthetic shapes world", "version": "1.0", "year": 2014},
                "licenses": [],
                "images": [
                    {"id": i.image_id, "file_name": i.file_name, "width": world.size, "height": world.size}
                    for i in chosen
                ],
                "annotations": annotations,
            },
        )
        world.counts[DATASET_NAMES["coco_captions"]][split] += len(chosen)

    karpathy_images = []
    sentence_id = 0
    for imgid, image in enumerate(images):
        sentences = []
        for caption in image.captions:
            sentences.append({"raw": caption, "tokens": _tokens(caption), "sentid": sentence_id, "imgid": imgid})
            sentence_id += 1
        karpathy_images.append(
            {
                "filepath": image.folder,
                "filename": image.file_name,
                "imgid": imgid,
                "cocoid": image.image_id,
                "split": image.karpathy_split,
                "sentences": sentences,
                "sentids": [sentence["sentid"] for sentence in sentences],
            }
        )
        world.counts[DATASET_NAMES["karpathy"]][image.karpathy_split] += 1
    world.write_json("coco/dataset_coco.json", {"images": karpathy_images, "dataset": "coco"})
    return images


def _write_visual_genome(world: _World, num_images: int) -> None:
    # Wider than tall, like most photos, so resizing and box scaling see a real aspect ratio.
    width, height = world.size * 3 // 2, world.size
    image_data, regions, objects = [], [], []
    region_id = object_id = 0
    for index in range(num_images):
        image_id = index + 1
        scene = world.sampler.sample(width, height)
        world.write_bytes(f"vg/VG_100K/{image_id}.jpg", _jpeg_bytes(scene))
        image_data.append(
            {
                "image_id": image_id,
                "width": width,
                "height": height,
                "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{image_id}.jpg",
                "coco_id": None,
                "flickr_id": None,
            }
        )
        image_regions, image_objects = [], []
        for shape in scene.shapes:
            x, y, w, h = shape.box
            region_id += 1
            object_id += 1
            image_regions.append(
                {
                    "region_id": region_id,
                    "image_id": image_id,
                    "phrase": f"{shape.name} {scene.position_of(shape)}",
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                }
            )
            image_objects.append(
                # The colour as an attribute (VG's attributes.json layout): "red square" names one object of
                # the scene, where "square" alone may name two and give the box losses no single answer.
                {"object_id": object_id, "x": x, "y": y, "w": w, "h": h, "names": [shape.kind],
                 "synsets": [f"{shape.kind}.n.01"], "attributes": [shape.colour]}
            )
        regions.append({"id": image_id, "regions": image_regions})
        objects.append({"image_id": image_id, "objects": image_objects})
    world.write_json("vg/image_data.json", image_data)
    world.write_json("vg/region_descriptions.json", regions)
    world.write_json("vg/objects.json", objects)
    world.counts[DATASET_NAMES["visual_genome"]]["train"] += num_images
    world.counts[DATASET_NAMES["visual_genome_objects"]]["train"] += num_images


@dataclass(frozen=True)
class _Question:
    text: str
    answer: str
    question_type: str
    answer_type: str
    distractors: tuple[str, ...]


def _questions_for(scene: Scene, rng: random.Random) -> list[_Question]:
    """Three questions with unambiguous answers: a count, a yes/no, and a colour or shape question."""
    count = len(scene.shapes)
    questions = [
        _Question(
            "how many shapes are there?",
            str(count),
            "how many",
            "number",
            tuple(str(n) for n in range(1, 5) if n != count),
        )
    ]
    colour, kind = rng.choice(list(COLOURS)), rng.choice(SHAPE_KINDS)
    if rng.random() < 0.5:  # half the yes/no questions ask about a shape that is there
        shown = rng.choice(scene.shapes)
        colour, kind = shown.colour, shown.kind
    present = "yes" if scene.has(colour, kind) else "no"
    questions.append(
        _Question(f"is there a {colour} {kind}?", present, "is there a", "yes/no", ("no" if present == "yes" else "yes",))
    )
    unique_kind = [s for s in scene.shapes if sum(o.kind == s.kind for o in scene.shapes) == 1]
    unique_colour = [s for s in scene.shapes if sum(o.colour == s.colour for o in scene.shapes) == 1]
    if unique_kind and (not unique_colour or rng.random() < 0.5):
        shape = rng.choice(unique_kind)
        others = tuple(c for c in COLOURS if c != shape.colour)
        questions.append(_Question(f"what color is the {shape.kind}?", shape.colour, "what color is the", "other", others))
    elif unique_colour:
        shape = rng.choice(unique_colour)
        others = tuple(k for k in SHAPE_KINDS if k != shape.kind)
        questions.append(
            _Question(f"what shape is the {shape.colour} object?", shape.kind, "what shape is the", "other", others)
        )
    return questions


def _human_answers(question: _Question, rng: random.Random) -> list[str]:
    """Ten annotator answers: mostly right, a few wrong, some with stray case/space (as in real VQA)."""
    wrong = rng.choice((0, 0, 0, 1, 1, 2, 3))
    answers = [rng.choice(question.distractors) for _ in range(wrong)]
    for _ in range(10 - wrong):
        style = rng.random()
        answers.append(question.answer.capitalize() if style < 0.1 else question.answer + " " if style < 0.15 else question.answer)
    rng.shuffle(answers)
    return answers


def _write_vqa(world: _World, coco_images: list[_CocoImage]) -> None:
    rng = world.rng("vqa")
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        questions, annotations = [], []
        for image in (i for i in coco_images if i.folder == folder):
            for number, question in enumerate(_questions_for(image.scene, rng)):
                question_id = image.image_id * 1000 + number
                answers = _human_answers(question, rng)
                questions.append({"image_id": image.image_id, "question": question.text, "question_id": question_id})
                annotations.append(
                    {
                        "question_id": question_id,
                        "image_id": image.image_id,
                        "question_type": question.question_type,
                        "answer_type": question.answer_type,
                        "multiple_choice_answer": question.answer,
                        "answers": [
                            {
                                "answer": answer,
                                "answer_confidence": "yes" if answer.strip().lower() == question.answer else "maybe",
                                "answer_id": answer_id,
                            }
                            for answer_id, answer in enumerate(answers, start=1)
                        ],
                    }
                )
        header = {"info": {"description": "x2vlm synthetic shapes world"}, "license": {}, "data_type": "mscoco", "data_subtype": folder}
        world.write_json(
            f"vqa/v2_OpenEnded_mscoco_{folder}_questions.json",
            {**header, "task_type": "Open-Ended", "questions": questions},
        )
        world.write_json(f"vqa/v2_mscoco_{folder}_annotations.json", {**header, "annotations": annotations})
        world.counts[DATASET_NAMES["vqa_v2"]][split] += len(questions)


def _nlvr2_statement(left: Scene, right: Scene, rng: random.Random, want: bool) -> str:
    """A statement about the pair whose truth is ``want``: random templates first, then a sure one."""
    sides = {"left": left, "right": right}
    for _ in range(30):
        template = rng.randrange(4)
        colour, kind = rng.choice(list(COLOURS)), rng.choice(SHAPE_KINDS)
        if template == 0:
            side = rng.choice(("left", "right"))
            text, truth = f"the {side} image contains a {colour} {kind}", sides[side].has(colour, kind)
        elif template == 1:
            text, truth = f"both images contain a {colour} {kind}", left.has(colour, kind) and right.has(colour, kind)
        elif template == 2:
            count = rng.randint(1, 3)
            text = f"both images contain {_shapes_word(count)}"
            truth = len(left.shapes) == count == len(right.shapes)
        else:
            text, truth = "the left image has more shapes than the right image", len(left.shapes) > len(right.shapes)
        if truth == want:
            return text
    side = rng.choice(("left", "right"))
    scene = sides[side]
    if want:
        shape = rng.choice(scene.shapes)
        colour, kind = shape.colour, shape.kind
    else:
        colour, kind = rng.choice([(c, k) for c in COLOURS for k in SHAPE_KINDS if not scene.has(c, k)])
    return f"the {side} image contains a {colour} {kind}"


def _write_nlvr2(world: _World, num_pairs: int) -> None:
    rng = world.rng("nlvr2")
    splits = ["train" if d < 0.7 else "dev" if d < 0.85 else "test1" for d in (rng.random() for _ in range(num_pairs))]
    for split in ("train", "dev", "test1"):
        (world.root / "nlvr2" / "images" / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for pair_number in range(splits.count(split)):
            # Two pairs per "set", numbered like the real identifiers split-set-pair-sentence.
            prefix = f"{split}-{pair_number // 2}-{pair_number % 2}"
            left = world.sampler.sample(world.size, world.size)
            right = world.sampler.sample(world.size, world.size)
            world.write_bytes(f"nlvr2/images/{split}/{prefix}-img0.png", _png_bytes(left))
            world.write_bytes(f"nlvr2/images/{split}/{prefix}-img1.png", _png_bytes(right))
            labels = [True, False]
            rng.shuffle(labels)  # one true and one false statement per pair: balanced labels
            for sentence_number, label in enumerate(labels):
                entry = {
                    "identifier": f"{prefix}-{sentence_number}",
                    "sentence": _nlvr2_statement(left, right, rng, label),
                    "label": "True" if label else "False",
                    "left_url": f"synthetic://nlvr2/{prefix}-img0.png",
                    "right_url": f"synthetic://nlvr2/{prefix}-img1.png",
                    "writer": "synthetic",
                }
                if split == "train":
                    entry["directory"] = str(pair_number // 2 % 100)  # real train images sit in numbered folders
                lines.append(json.dumps(entry, sort_keys=True))
            world.counts[DATASET_NAMES["nlvr2"]][split] += len(labels)
        world.write_bytes(f"nlvr2/{split}.json", "".join(line + "\n" for line in lines).encode("utf-8"))


def _write_refcoco(world: _World, coco_images: list[_CocoImage]) -> None:
    rng = world.rng("refcoco")
    train_images = [image for image in coco_images if image.folder == "train2014"]
    refs, annotations = [], []
    annotation_id = ref_id = sentence_id = 0
    for image in train_images:
        draw = rng.random()
        split = "train" if draw < 0.7 else "val" if draw < 0.8 else "testA" if draw < 0.9 else "testB"
        for shape in image.scene.shapes:
            annotation_id += 1
            x, y, w, h = shape.box
            annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image.image_id,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "category_id": CATEGORY_IDS[shape.kind],
                    "iscrowd": 0,
                }
            )
            texts = [f"{shape.name} {image.scene.position_of(shape)}", f"the {shape.name}"]
            sentences = []
            for text in texts:
                sentences.append({"sent": text, "raw": text, "tokens": _tokens(text), "sent_id": sentence_id})
                sentence_id += 1
            refs.append(
                {
                    "ref_id": ref_id,
                    "ann_id": annotation_id,
                    "image_id": image.image_id,
                    "split": split,
                    "sentences": sentences,
                    "category_id": CATEGORY_IDS[shape.kind],
                    # The real file names the annotation too; the image itself is the COCO file.
                    "file_name": f"COCO_train2014_{image.image_id:012d}_{annotation_id}.jpg",
                    "sent_ids": [sentence["sent_id"] for sentence in sentences],
                }
            )
            ref_id += 1
            world.counts[DATASET_NAMES["refcoco"]][split] += 1
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.fast = True  # no memo references: bytes depend only on the values, not on object identity
    pickler.dump(refs)
    world.write_bytes("refcoco+/refs(unc).p", buffer.getvalue())
    world.write_json(
        "refcoco+/instances.json",
        {
            "images": [
                {"id": i.image_id, "file_name": i.file_name, "width": world.size, "height": world.size}
                for i in train_images
            ],
            "annotations": annotations,
            "categories": [{"id": CATEGORY_IDS[k], "name": k, "supercategory": "shape"} for k in SHAPE_KINDS],
        },
    )


# ---------------------------------------------------------------- web-scale image-text formats


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A tar with fixed header fields, so the same members give the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "x2vlm", "x2vlm"
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _img2dataset_meta(key: str, caption: str, size: int) -> dict[str, Any]:
    return {
        "url": f"https://example.invalid/shapes/{key}.jpg",
        "caption": caption,
        "key": key,
        "status": "success",
        "error_message": None,
        "width": size,
        "height": size,
        "original_width": size,
        "original_height": size,
    }


def _web_pairs(world: _World, count: int, purpose: str) -> list[tuple[Scene, str]]:
    rng = world.rng(purpose)
    pairs = []
    for _ in range(count):
        scene = world.sampler.sample(world.size, world.size)
        pairs.append((scene, _captions(scene, rng, 1)[0]))
    return pairs


def _write_img2dataset_webdataset(world: _World, count: int) -> None:
    """img2dataset output_format=webdataset: NNNNN.tar of key.jpg/.txt/.json, NNNNN.parquet and NNNNN_stats.json."""
    per_shard = max(1, (count + 1) // 2)
    pairs = _web_pairs(world, count, "img2dataset-webdataset")
    for shard in range(0, count, per_shard):
        members = []
        for offset, (scene, caption) in enumerate(pairs[shard : shard + per_shard]):
            key = f"{shard // per_shard:05d}{offset:04d}"
            meta = _img2dataset_meta(key, caption, world.size)
            members += [(f"{key}.jpg", _jpeg_bytes(scene)), (f"{key}.txt", caption.encode("utf-8")), (f"{key}.json", _json_bytes(meta))]
        world.write_bytes(f"cc3m/webdataset/{shard // per_shard:05d}.tar", _tar_bytes(members))
    world.counts[DATASET_NAMES["img2dataset_webdataset"]]["train"] += count


def _write_img2dataset_files(world: _World, count: int) -> None:
    """img2dataset output_format=files: NNNNN/key.jpg (+ .txt, .json) beside NNNNN.parquet listing every URL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for offset, (scene, caption) in enumerate(_web_pairs(world, count, "img2dataset-files")):
        key = f"00000{offset:04d}"
        world.write_bytes(f"cc3m/files/00000/{key}.jpg", _jpeg_bytes(scene))
        world.write_bytes(f"cc3m/files/00000/{key}.txt", caption.encode("utf-8"))
        world.write_json(f"cc3m/files/00000/{key}.json", _img2dataset_meta(key, caption, world.size))
        rows.append(_img2dataset_meta(key, caption, world.size))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    world.write_bytes("cc3m/files/00000.parquet", buffer.getvalue())
    world.counts[DATASET_NAMES["img2dataset_files"]]["train"] += count


def _write_caption_tsv(world: _World, count: int) -> None:
    """Conceptual Captions' caption<TAB>image layout, with the images already local."""
    lines = []
    for index, (scene, caption) in enumerate(_web_pairs(world, count, "caption-tsv")):
        name = f"{index:08d}.jpg"
        world.write_bytes(f"cc3m/tsv/images/{name}", _jpeg_bytes(scene))
        lines.append(f"{caption}\t{name}\n")
    world.write_bytes("cc3m/tsv/Train_GCC-training.tsv", "".join(lines).encode("utf-8"))
    world.counts[DATASET_NAMES["caption_tsv"]]["train"] += count


# ---------------------------------------------------------------- official X²-VLM / CCLM json-lines


def _json_line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True) + "\n"


def _write_x2vlm_image_text(world: _World, count: int) -> None:
    lines = [
        _json_line({"binary": base64.b64encode(_jpeg_bytes(scene)).decode("ascii"), "desc": caption})
        for scene, caption in _web_pairs(world, count, "x2vlm-image-text")
    ]
    world.write_bytes("x2vlm/image_text/part-00000.jsonl", "".join(lines).encode("utf-8"))
    world.counts[DATASET_NAMES["x2vlm_image_text"]]["train"] += count


def _write_x2vlm_region_text(world: _World, count: int) -> None:
    rng = world.rng("x2vlm-region-text")
    lines = []
    for _ in range(count):
        scene = world.sampler.sample(world.size, world.size)
        elems = [
            {"bb": list(shape.box), "caption": f"{shape.name} {scene.position_of(shape)}", "attributes": shape.colour}
            for shape in scene.shapes
        ]
        caption = _captions(scene, rng, 1)[0]
        lines.append(_json_line({"binary": base64.b64encode(_jpeg_bytes(scene)).decode("ascii"), "caption": caption, "elems": elems}))
    world.write_bytes("x2vlm/region_text/part-00000.jsonl", "".join(lines).encode("utf-8"))
    world.counts[DATASET_NAMES["x2vlm_region_text"]]["train"] += count


_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "gu", "fe")


def translate(text: str) -> str:
    """The caption in "shapes-speak": every word replaced by its own made-up word (numbers kept)."""
    def word(match: re.Match) -> str:
        token = match.group(0)
        if token.isdigit():
            return token
        digest = hashlib.sha256(token.lower().encode("utf-8")).digest()
        return "".join(_SYLLABLES[b % len(_SYLLABLES)] for b in digest[: 1 + min(3, len(token) // 3)])

    return re.sub(r"[A-Za-z0-9]+", word, text)


def _write_translated_captions(world: _World, coco_images: list[_CocoImage]) -> None:
    """CCLM's multilingual image-text json-lines: base64 image + ``caption`` {language: text}.

    The train images' file (``pretrain_multilingual``) is read as X²-VLM json-lines (``caption_key:
    caption``); the val images' one, held-out images for multilingual retrieval
    (``multilingual_retrieval``, split test), with the cclm_image_text format.
    """
    for folder, dataset, split, relative in (
            ("train2014", MULTILINGUAL_DATASET, "train", "x2vlm/multilingual/part-00000.jsonl"),
            ("val2014", MULTILINGUAL_RETRIEVAL_DATASET, "test", "x2vlm/multilingual_val/part-00000.jsonl")):
        lines = []
        for image in (i for i in coco_images if i.folder == folder):
            data = (world.root / "coco" / image.folder / image.file_name).read_bytes()
            captions = [{"en": caption, SYNTHETIC_LANGUAGE: translate(caption)} for caption in image.captions[:2]]
            lines.append(_json_line({"binary": base64.b64encode(data).decode("ascii"), "caption": captions, "image_id": image.image_id}))
        world.write_bytes(relative, "".join(lines).encode("utf-8"))
        world.counts[dataset][split] += len(lines)


def _write_parallel_text(world: _World, coco_images: list[_CocoImage]) -> None:
    """A WikiMatrix-style TSV (``score<TAB>English<TAB>shapes-speak``): each distinct COCO caption and its translation."""
    rng = world.rng("parallel")
    captions = sorted({caption for image in coco_images for caption in image.captions})
    lines = [f"{rng.uniform(1.04, 1.3):.4f}\t{caption}\t{translate(caption)}\n" for caption in captions]
    world.write_bytes(PARALLEL_FILE, "".join(lines).encode("utf-8"))
    world.counts[PARALLEL_DATASET]["train"] += len(lines)


# ---------------------------------------------------------------- IGLUE-style cross-lingual sets

XVNLI_DATASET, XGQA_DATASET, MARVL_DATASET, XFLICKRCO_DATASET = "xvnli", "xgqa", "marvl", "xflickrco"
IGLUE_IMAGES = "iglue/images"  # copies of COCO scenes: damaging a COCO file leaves these sets whole
_MATERIALS = ("wood", "paper", "metal", "glass")


@dataclass(frozen=True)
class _IglueParts:
    """The COCO images of each part of the cross-lingual sets: English train and dev, target-language
    few-shot pool (train images), and the test images, captioned in English and in shapes-speak."""

    train: list[_CocoImage]
    few_shot: list[_CocoImage]
    dev: list[_CocoImage]
    test: list[_CocoImage]


def _iglue_parts(world: _World, coco_images: list[_CocoImage]) -> _IglueParts:
    train = [image for image in coco_images if image.folder == "train2014"]
    held_out = [image for image in coco_images if image.folder == "val2014"]
    for image in train + held_out:
        world.write_bytes(f"{IGLUE_IMAGES}/{image.file_name}",
                          (world.root / "coco" / image.folder / image.file_name).read_bytes())
    few, dev = max(1, len(train) // 5) if len(train) > 1 else 0, len(held_out) // 3
    return _IglueParts(train=train[few:], few_shot=train[:few], dev=held_out[:dev], test=held_out[dev:])


def _stem(image: _CocoImage) -> str:
    return Path(image.file_name).stem


def _entailment_hypotheses(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """One hypothesis per label, decided by the scene: entailment true of it, contradiction false of it,
    neutral about what no picture shows (the material of a shape that is there)."""
    count = len(scene.shapes)
    shown = rng.choice(scene.shapes)
    absent = rng.choice([(c, k) for c in COLOURS for k in SHAPE_KINDS if not scene.has(c, k)])
    if rng.random() < 0.5:
        entailment, contradiction = f"there is a {shown.name}", f"there is a {absent[0]} {absent[1]}"
    else:
        wrong = rng.choice([n for n in range(1, 5) if n != count])
        entailment, contradiction = (f"there {'is' if n == 1 else 'are'} {_shapes_word(n)}" for n in (count, wrong))
    neutral = f"the {rng.choice(scene.shapes).name} is made of {rng.choice(_MATERIALS)}"
    return [(entailment, "entailment"), (contradiction, "contradiction"), (neutral, "neutral")]


def _iglue_write(world: _World, relative: str, text: str, dataset: str, split: str, records: int,
                 source: dict[str, str]) -> list[dict[str, str]]:
    """Write one annotation file; its source entry (none for an empty part)."""
    if not records:
        return []
    world.write_bytes(relative, text.encode("utf-8"))
    world.counts[dataset][split] += records
    return [{"format": source.pop("format"), "dataset": dataset, "split": split,
             "annotations": str(world.root / relative), **source}]


def _write_xvnli(world: _World, parts: _IglueParts) -> list[dict[str, str]]:
    """XVNLI json-lines (``annotations/{language}/{split}.jsonl``): Flikr30kID, sentence1, sentence2, gold_label."""
    rng = world.rng("xvnli")
    images = str(world.root / IGLUE_IMAGES)
    per_image = {image.image_id: _entailment_hypotheses(image.scene, rng)
                 for image in parts.train + parts.few_shot + parts.dev + parts.test}
    sources = []
    for split, chosen, languages in (("train", parts.train, ["en"]), ("dev", parts.dev, ["en"]),
                                     ("test", parts.test, ["en", SYNTHETIC_LANGUAGE]),
                                     ("few_shot", parts.few_shot, [SYNTHETIC_LANGUAGE])):
        for language in languages:
            say = translate if language == SYNTHETIC_LANGUAGE else str
            lines = [_json_line({"Flikr30kID": _stem(image), "sentence1": say(image.captions[0]),
                                 "sentence2": say(hypothesis), "gold_label": label,
                                 "pairID": f"{image.image_id}-{label}"})
                     for image in chosen for hypothesis, label in per_image[image.image_id]]
            name = "train" if split == "few_shot" else split  # IGLUE's few-shot files are the language's train
            sources += _iglue_write(world, f"iglue/XVNLI/annotations/{language}/{name}.jsonl", "".join(lines),
                                    XVNLI_DATASET, split, len(lines), {"format": "xvnli", "images": images})
    return sources


def _write_xgqa(world: _World, parts: _IglueParts) -> list[dict[str, str]]:
    """xGQA: English training questions in the LXMERT list IGLUE trains on, the rest in GQA's own layout."""
    rng = world.rng("xgqa")
    images = str(world.root / IGLUE_IMAGES)
    questions = {image.image_id: _questions_for(image.scene, rng)
                 for image in parts.train + parts.few_shot + parts.dev + parts.test}
    sources = []
    lxmert = [{"img_id": _stem(image), "sent": q.text, "question_id": f"{image.image_id}{n:02d}",
               "label": {q.answer: 1.0}} for image in parts.train for n, q in enumerate(questions[image.image_id])]
    sources += _iglue_write(world, "iglue/xGQA/annotations/en/train.json", json.dumps(lxmert, sort_keys=True),
                            XGQA_DATASET, "train", len(lxmert), {"format": "xgqa", "images": images})
    for split, chosen, language, relative in (
            ("val", parts.dev, "en", "en/dev.json"),
            ("test", parts.test, "en", "zero_shot/en/test.json"),
            ("test", parts.test, SYNTHETIC_LANGUAGE, f"zero_shot/{SYNTHETIC_LANGUAGE}/test.json"),
            ("few_shot", parts.few_shot, SYNTHETIC_LANGUAGE, f"few_shot/{SYNTHETIC_LANGUAGE}/train.json")):
        say = translate if language == SYNTHETIC_LANGUAGE else str
        # Answers stay English in every language, as in xGQA.
        gqa = {f"{image.image_id}{n:02d}": {"imageId": _stem(image), "question": say(q.text), "answer": q.answer,
                                            "types": {"structural": "verify" if q.answer_type == "yes/no" else "query"}}
               for image in chosen for n, q in enumerate(questions[image.image_id])}
        sources += _iglue_write(world, f"iglue/xGQA/annotations/{relative}", json.dumps(gqa, sort_keys=True),
                                XGQA_DATASET, split, len(gqa), {"format": "xgqa", "images": images})
    return sources


def _write_marvl(world: _World, parts: _IglueParts) -> list[dict[str, str]]:
    """MaRVL: English train/dev in the NLVR2-style json list, test and few-shot in IGLUE's json-lines."""
    rng = world.rng("marvl")
    images = str(world.root / IGLUE_IMAGES)
    sources = []
    for split, chosen, languages in (("train", parts.train, ["en"]), ("dev", parts.dev, ["en"]),
                                     ("test", parts.test, ["en", SYNTHETIC_LANGUAGE]),
                                     ("few_shot", parts.few_shot, [SYNTHETIC_LANGUAGE])):
        pairs = [(chosen[i], chosen[i + 1]) for i in range(0, len(chosen) - 1, 2)]
        statements = []
        for left, right in pairs:
            labels = [True, False]
            rng.shuffle(labels)  # one true and one false statement per pair
            statements += [(left, right, _nlvr2_statement(left.scene, right.scene, rng, label), label) for label in labels]
        for language in languages:
            say = translate if language == SYNTHETIC_LANGUAGE else str
            if split in ("train", "dev"):
                text = json.dumps([{"sentence": sentence, "label": label, "images": [left.file_name, right.file_name]}
                                   for left, right, sentence, label in statements], sort_keys=True)
                relative = f"iglue/marvl/annotations/{split}-{language}.json"
            else:
                text = "".join(_json_line({"id": f"{split}-{n}", "caption": say(sentence), "label": label,
                                           "language": language, "concept": "shapes",
                                           "left_img": left.file_name, "right_img": right.file_name})
                               for n, (left, right, sentence, label) in enumerate(statements))
                relative = f"iglue/marvl/annotations/{split}/marvl-{language}.jsonl"
            sources += _iglue_write(world, relative, text, MARVL_DATASET, split, len(statements),
                                    {"format": "marvl", "images": images})
    return sources


def _write_xflickrco(world: _World, parts: _IglueParts) -> list[dict[str, str]]:
    """xFlickr&CO json-lines (``annotations/{language}/{split}.jsonl``): id, img_path, sentences."""
    images = str(world.root / IGLUE_IMAGES)
    sources = []
    for split, chosen, languages in (("train", parts.train, ["en"]), ("test", parts.test, ["en", SYNTHETIC_LANGUAGE]),
                                     ("few_shot", parts.few_shot, [SYNTHETIC_LANGUAGE])):
        for language in languages:
            say = translate if language == SYNTHETIC_LANGUAGE else str
            lines = [_json_line({"id": image.image_id, "img_path": image.file_name,
                                 "sentences": [say(caption) for caption in image.captions[:2]]}) for image in chosen]
            name = "train" if split == "few_shot" else split
            sources += _iglue_write(world, f"iglue/xFlickrCO/annotations/{language}/{name}.jsonl", "".join(lines),
                                    XFLICKRCO_DATASET, split, len(lines),
                                    {"format": "xflickrco", "flickr30k_images": images, "coco_images": images})
    return sources


def _write_iglue(world: _World, coco_images: list[_CocoImage]) -> list[dict[str, str]]:
    """XVNLI, xGQA, MaRVL and xFlickr&CO in their original formats, over the COCO scenes; their sources."""
    parts = _iglue_parts(world, coco_images)
    return _write_xvnli(world, parts) + _write_xgqa(world, parts) + _write_marvl(world, parts) + _write_xflickrco(world, parts)


# ---------------------------------------------------------------- videos


@dataclass(frozen=True)
class _Mover:
    shape: Shape  # its box at the first frame
    direction: str

    def box_at(self, frame: int, step: int) -> tuple[int, int, int, int]:
        dx, dy = DIRECTIONS[self.direction]
        x, y, w, h = self.shape.box
        return (x + dx * step * frame, y + dy * step * frame, w, h)


@dataclass(frozen=True)
class _Clip:
    size: int
    frames: int
    movers: tuple[_Mover, ...]

    @property
    def step(self) -> int:
        return max(1, self.size // 20)

    def scenes(self) -> list[Scene]:
        return [
            Scene(self.size, self.size, tuple(Shape(m.shape.colour, m.shape.kind, m.box_at(f, self.step)) for m in self.movers))
            for f in range(self.frames)
        ]


def _sample_clip(world: _World, rng: random.Random, seen: set[_Clip]) -> _Clip:
    size = world.size
    combos = [(colour, kind) for colour in COLOURS for kind in SHAPE_KINDS]
    while True:
        frames = rng.randint(*VIDEO_FRAMES)
        side = size // 4
        travel = max(1, size // 20) * (frames - 1)
        movers = []
        for (colour, kind), direction in zip(rng.sample(combos, rng.randint(1, 2)), rng.sample(list(DIRECTIONS), 2)):
            dx, dy = DIRECTIONS[direction]
            # Start where the whole path stays inside the frame.
            x_low, x_high = 1 + max(0, -dx * travel), size - side - 1 - max(0, dx * travel)
            y_low, y_high = 1 + max(0, -dy * travel), size - side - 1 - max(0, dy * travel)
            box = (rng.randint(x_low, x_high), rng.randint(y_low, y_high), side, side)
            movers.append(_Mover(Shape(colour, kind, box), direction))
        clip = _Clip(size, frames, tuple(movers))
        if clip not in seen:
            seen.add(clip)
            return clip


def _clip_captions(clip: _Clip, rng: random.Random, count: int) -> list[str]:
    def moving(mover: _Mover, verb: str) -> str:
        return f"a {mover.shape.name} {verb} {mover.direction}"

    templates = (
        lambda movers: _listing([moving(m, "moving") for m in movers]),
        lambda movers: _listing([moving(m, "moves") for m in movers]),
        lambda movers: "a video of " + _listing([moving(m, "going") for m in movers]),
        lambda movers: f"{_shapes_word(len(movers))} moving: " + _listing([f"the {m.shape.name} goes {m.direction}" for m in movers]),
        lambda movers: "a clip where " + _listing([moving(m, "slides") for m in movers]),
    )
    captions = []
    for template in rng.sample(templates, count):
        movers = list(clip.movers)
        rng.shuffle(movers)
        captions.append(template(movers))
    return captions


def _clip_questions(clip: _Clip, rng: random.Random) -> list[tuple[str, str]]:
    """Two questions with one-word answers: which way a shape moves, and which shape moves a given way."""
    mover = rng.choice(clip.movers)
    other = rng.choice(clip.movers)
    return [
        (f"which way does the {mover.shape.name} move?", mover.direction),
        (f"what color is the shape moving {other.direction}?", other.shape.colour),
    ]


def _write_clip(world: _World, relative: str, clip: _Clip) -> None:
    from x2vlm_core.data.video import encode_mp4

    world.write_bytes(relative, encode_mp4([render(scene) for scene in clip.scenes()]))


def _write_webvid(world: _World, count: int, seen: set[_Clip]) -> None:
    """WebVid results csv (videoid,contentUrl,duration,page_dir,name) + videos/<page_dir>/<videoid>.mp4."""
    rng = world.rng("webvid")
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
    for index in range(count):
        clip = _sample_clip(world, rng, seen)
        video_id = str(1_000_000_000 + index)
        first = index // 50 * 50 + 1
        page_dir = f"{first:06d}_{first + 49:06d}"
        _write_clip(world, f"webvid/videos/{page_dir}/{video_id}.mp4", clip)
        caption = _clip_captions(clip, rng, 1)[0]
        duration = f"PT00H00M{clip.frames // 8:02d}S"
        writer.writerow([video_id, f"https://example.invalid/webvid/{video_id}.mp4", duration, page_dir, caption])
    world.write_bytes("webvid/results_2M_train.csv", table.getvalue().encode("utf-8"))
    world.counts[DATASET_NAMES["webvid"]]["train"] += count


def _write_msrvtt(world: _World, count: int, seen: set[_Clip]) -> None:
    """MSR-VTT: videos/all/videoN.mp4, annotation/{train_val,test}_videodatainfo.json, and MSRVTT-QA {train,test}_qa.json."""
    rng = world.rng("msrvtt")
    test_from = max(1, min(count - 1, round(count * 0.7)))
    clips = []
    for index in range(count):
        clip = _sample_clip(world, rng, seen)
        _write_clip(world, f"msrvtt/videos/all/video{index}.mp4", clip)
        clips.append(clip)
    sentence_id = question_id = 0
    for split, file_name, chosen in (("train", "train_val", range(0, test_from)), ("test", "test", range(test_from, count))):
        videos, sentences, questions = [], [], []
        for index in chosen:
            clip = clips[index]
            videos.append(
                {"category": index % 20, "url": f"https://example.invalid/msrvtt/{index}", "video_id": f"video{index}",
                 "start time": 0.0, "end time": clip.frames / 8, "split": split, "id": index}
            )
            for caption in _clip_captions(clip, rng, 4):
                sentences.append({"caption": caption, "video_id": f"video{index}", "sen_id": sentence_id})
                sentence_id += 1
            for question, answer in _clip_questions(clip, rng):
                questions.append({"answer": answer, "category_id": index % 20, "id": question_id, "question": question, "video_id": index})
                question_id += 1
        info = {"contributor": "x2vlm synthetic shapes world", "year": 2016, "version": "1.0"}
        world.write_json(f"msrvtt/annotation/{file_name}_videodatainfo.json", {"info": info, "videos": videos, "sentences": sentences})
        world.write_json(f"msrvtt_qa/{split}_qa.json", questions)
        world.counts[DATASET_NAMES["msrvtt"]][split] += len(videos)
        world.counts[DATASET_NAMES["msrvtt_qa"]][split] += len(questions)


def _sources_list(root: Path) -> list[dict[str, str]]:
    names = DATASET_NAMES
    coco, vqa = root / "coco", root / "vqa"
    sources: list[dict[str, str]] = []
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        sources.append(
            {
                "format": "coco_captions",
                "dataset": names["coco_captions"],
                "split": split,
                "annotations": str(coco / "annotations" / f"captions_{folder}.json"),
                "images": str(coco / folder),
            }
        )
    sources.append(
        {"format": "karpathy", "dataset": names["karpathy"], "annotations": str(coco / "dataset_coco.json"), "images": str(coco)}
    )
    sources.append(
        {
            "format": "visual_genome",
            "dataset": names["visual_genome"],
            "split": "train",
            "regions": str(root / "vg" / "region_descriptions.json"),
            "image_data": str(root / "vg" / "image_data.json"),
            "images": str(root / "vg"),
        }
    )
    for folder, split in (("train2014", "train"), ("val2014", "val")):
        sources.append(
            {
                "format": "vqa_v2",
                "dataset": names["vqa_v2"],
                "split": split,
                "questions": str(vqa / f"v2_OpenEnded_mscoco_{folder}_questions.json"),
                "annotations": str(vqa / f"v2_mscoco_{folder}_annotations.json"),
                "images": str(coco / folder),
            }
        )
    for split in ("train", "dev", "test1"):
        sources.append(
            {
                "format": "nlvr2",
                "dataset": names["nlvr2"],
                "annotations": str(root / "nlvr2" / f"{split}.json"),
                "images": str(root / "nlvr2" / "images"),
            }
        )
    sources.append(
        {
            "format": "refcoco",
            "dataset": names["refcoco"],
            "refs": str(root / "refcoco+" / "refs(unc).p"),
            "instances": str(root / "refcoco+" / "instances.json"),
            "images": str(coco / "train2014"),
        }
    )
    sources.append(
        {
            "format": "visual_genome_objects",
            "dataset": names["visual_genome_objects"],
            "split": "train",
            "objects": str(root / "vg" / "objects.json"),
            "image_data": str(root / "vg" / "image_data.json"),
            "images": str(root / "vg"),
        }
    )
    cc3m, x2vlm = root / "cc3m", root / "x2vlm"
    sources += [
        {"format": "img2dataset_webdataset", "dataset": names["img2dataset_webdataset"], "shards": str(cc3m / "webdataset")},
        {"format": "img2dataset_files", "dataset": names["img2dataset_files"], "folder": str(cc3m / "files")},
        {
            "format": "caption_tsv",
            "dataset": names["caption_tsv"],
            "annotations": str(cc3m / "tsv" / "Train_GCC-training.tsv"),
            "images": str(cc3m / "tsv" / "images"),
        },
        {"format": "x2vlm_image_text", "dataset": names["x2vlm_image_text"], "data": str(x2vlm / "image_text")},
        {"format": "x2vlm_region_text", "dataset": names["x2vlm_region_text"], "data": str(x2vlm / "region_text")},
        {"format": "x2vlm_image_text", "dataset": MULTILINGUAL_DATASET, "data": str(x2vlm / "multilingual"), "caption_key": "caption"},
        {"format": "cclm_image_text", "dataset": MULTILINGUAL_RETRIEVAL_DATASET, "split": "test", "data": str(x2vlm / "multilingual_val")},
        {"format": "parallel_tsv", "dataset": PARALLEL_DATASET, "data": str(root / PARALLEL_FILE)},
        {
            "format": "webvid",
            "dataset": names["webvid"],
            "annotations": str(root / "webvid" / "results_2M_train.csv"),
            "videos": str(root / "webvid" / "videos"),
        },
    ]
    for name in ("train_val", "test"):
        sources.append(
            {
                "format": "msrvtt",
                "dataset": names["msrvtt"],
                "annotations": str(root / "msrvtt" / "annotation" / f"{name}_videodatainfo.json"),
                "videos": str(root / "msrvtt" / "videos" / "all"),
            }
        )
    for split in ("train", "test"):
        sources.append(
            {
                "format": "msrvtt_qa",
                "dataset": names["msrvtt_qa"],
                "split": split,
                "annotations": str(root / "msrvtt_qa" / f"{split}_qa.json"),
                "videos": str(root / "msrvtt" / "videos" / "all"),
            }
        )
    return sources


def generate_shapes_world(
    out_dir: str | Path, num_images: int = 320, seed: int = 0, image_size: int = 64
) -> dict[str, Any]:
    """Write the shapes world under ``out_dir``; return the manifest (also written as manifest.json).

    ``num_images`` COCO images (shared by captions, Karpathy, VQA, RefCOCO+ and the translated
    captions), ``num_images // 2`` Visual Genome images and NLVR2 image pairs, ``num_images // 16``
    images for each web-scale format (img2dataset tars, img2dataset files, TSV, X²-VLM image-text
    and region-text json-lines), and ``num_images // 16`` videos each for WebVid and MSR-VTT
    (at least 2 of each). ``sources.yaml`` lists every source for prepare-data with absolute paths;
    the manifest gives the records each dataset yields per split.
    """
    if num_images < 1:
        raise ConfigError(f"num_images={num_images}: the shapes world needs at least 1 image; pass num_images >= 1")
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(
            f"image_size={image_size}: too small to draw 3 separate shapes; pass image_size >= {MIN_IMAGE_SIZE}"
        )
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    world = _World(root, seed, image_size)

    coco_images = _write_coco(world, num_images)
    _write_visual_genome(world, max(1, num_images // 2))
    _write_vqa(world, coco_images)
    _write_nlvr2(world, max(1, num_images // 2))
    _write_refcoco(world, coco_images)
    web = max(2, num_images // 16)
    _write_img2dataset_webdataset(world, web)
    _write_img2dataset_files(world, web)
    _write_caption_tsv(world, web)
    _write_x2vlm_image_text(world, web)
    _write_x2vlm_region_text(world, web)
    _write_translated_captions(world, coco_images)
    _write_parallel_text(world, coco_images)
    clips: set[_Clip] = set()
    _write_webvid(world, web, clips)
    _write_msrvtt(world, web, clips)
    iglue_sources = _write_iglue(world, coco_images)  # last: the files above stay as they were

    header = "# prepare-data sources for the synthetic shapes world (x2vlm_core.data.synthetic)\n"
    sources_yaml = yaml.safe_dump({"sources": _sources_list(root) + iglue_sources}, sort_keys=False, width=1000)
    world.write_bytes("sources.yaml", (header + sources_yaml).encode("utf-8"))

    datasets = {
        dataset: {split: count for split, count in sorted(counts.items()) if count}
        for dataset, counts in sorted(world.counts.items())
    }
    manifest = {
        "generator": "x2vlm_core.data.synthetic.generate_shapes_world",
        "seed": seed,
        "num_images": num_images,
        "image_size": image_size,
        "datasets": datasets,
        "total": sum(sum(splits.values()) for splits in datasets.values()),
    }
    world.write_bytes("manifest.json", json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8") + b"\n")
    return manifest
