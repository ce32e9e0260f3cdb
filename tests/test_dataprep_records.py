"""records.process_record without Beam: a raw record becomes a resized, re-encoded sample or a named reject."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from x2vlm_core.data.video import encode_mp4
from x2vlm_core.dataprep.outcomes import REJECTED, SAMPLES
from x2vlm_core.dataprep.records import process_record


def _image(path, size=(80, 40), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path, format="PNG")
    return str(path)


def _record(paths, kind="image_text", **fields):
    base = {
        "key": "k1",
        "dataset": "d",
        "source": "coco_captions",
        "split": "train",
        "kind": kind,
        "image_paths": list(paths),
        "captions": ["a red box"],
    }
    return {**base, **fields}


def test_an_image_record_becomes_a_sample_resized_to_the_max_side(tmp_path):
    record = _record(
        [_image(tmp_path / "a.png")],
        kind="region_text",
        regions=[{"bbox": [8, 4, 40, 20], "caption": "the box"}, {"bbox": [0, 0, 4, 4], "caption": " "}],
    )
    tag, sample = process_record(record, max_image_side=40)
    assert tag == SAMPLES
    assert sample["original_sizes"] == [(80, 40)] and sample["texts_dropped"] == 1
    assert Image.open(io.BytesIO(sample["images"][0])).format == "JPEG"
    assert Image.open(io.BytesIO(sample["images"][0])).size == (40, 20)
    meta = sample["meta"]
    assert (meta["width"], meta["height"]) == (40, 20) and "image_paths" not in meta
    assert meta["regions"] == [{"bbox": [4.0, 2.0, 20.0, 10.0], "caption": "the box"}]  # halved with the pixels
    assert len(sample["content_sha256"]) == 64


@pytest.mark.parametrize(
    "damage,reason",
    [
        (lambda p: p.unlink(), "missing_file"),
        (lambda p: p.write_bytes(b""), "empty_file"),
        (lambda p: p.write_bytes(b"\x89PNG not really"), "undecodable"),
    ],
)
def test_unusable_images_are_rejects_with_their_reason(tmp_path, damage, reason):
    path = tmp_path / "a.png"
    record = _record([_image(path)])
    damage(path)
    assert process_record(record, max_image_side=64) == (
        REJECTED,
        {
            "key": "k1",
            "dataset": "d",
            "source": "coco_captions",
            "split": "train",
            "image_paths": [str(path)],
            "reason": reason,
        },
    )


def test_reader_rejects_and_records_without_text_are_rejected_before_any_image_is_opened(tmp_path):
    missing = str(tmp_path / "never-written.png")
    tag, entry = process_record(_record([missing], reader_reject="download_failed"), 64)
    assert (tag, entry["reason"]) == (REJECTED, "download_failed")
    tag, entry = process_record(_record([missing], captions=["", "  "]), 64)
    assert (tag, entry["reason"]) == (REJECTED, "empty_caption")


def test_a_video_keeps_num_frames_frames(tmp_path):
    frames = [Image.new("RGB", (32, 24), (i * 40, 0, 0)) for i in range(6)]
    video = tmp_path / "clip.mp4"
    video.write_bytes(encode_mp4(frames))
    tag, sample = process_record(_record([str(video)], kind="video_text"), max_image_side=64, num_frames=2)
    assert tag == SAMPLES and len(sample["images"]) == 2
    assert sample["meta"]["num_frames"] == 2 and sample["meta"]["image_sizes"] == [[32, 24], [32, 24]]


def test_same_pixels_give_the_same_content_key_and_other_pixels_another(tmp_path):
    first = process_record(_record([_image(tmp_path / "a.png")]), 64)[1]
    copy = process_record(_record([_image(tmp_path / "b.png")], key="k2", captions=["other text"]), 64)[1]
    other = process_record(_record([_image(tmp_path / "c.png", color=(0, 0, 200))]), 64)[1]
    assert first["content_sha256"] == copy["content_sha256"] != other["content_sha256"]


def test_boxes_are_fitted_to_the_original_image_before_the_resize_and_counted(tmp_path):
    image = _image(tmp_path / "a.png")  # 80x40
    record = _record(
        [image],
        kind="region_text",
        captions=[],
        regions=[
            {"bbox": [60, 20, 40, 20], "caption": "over the edge"},
            {"bbox": [0, 0, 500, 500], "caption": "the scene"},
        ],
    )
    tag, sample = process_record(record, max_image_side=40)
    assert tag == SAMPLES and sample["boxes"] == {"clipped": 1, "mostly_outside": 1}
    assert sample["meta"]["regions"] == [
        {"bbox": [30.0, 10.0, 10.0, 10.0], "caption": "over the edge"}
    ]  # 20x20 kept, halved
    tag, rejected = process_record(
        _record([image], kind="grounding", captions=[], sentences=["left"], bbox=[70, 0, 50, 10]), 40
    )
    assert tag == REJECTED and rejected["reason"] == "box_mostly_outside" and rejected["boxes"] == {"mostly_outside": 1}
    tag, rejected = process_record({**record, "regions": [{"bbox": [3, 3, 0, 0], "caption": "nothing"}]}, 40)
    assert tag == REJECTED and rejected["reason"] == "no_usable_box" and rejected["boxes"] == {"degenerate": 1}
