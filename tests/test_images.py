"""Image validation, resizing, re-encoding and box scaling."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from x2vlm_core.data.images import (
    encode_jpeg,
    input_reference,
    load_and_validate,
    read_input,
    resize_max_side,
    scale_box,
)


def _save(
    path: Path, size: tuple[int, int], mode: str = "RGB", colour: object = (200, 30, 30), fmt: str = "JPEG"
) -> Path:
    Image.new(mode, size, colour).save(path, format=fmt)
    return path


def test_a_good_image_loads_as_rgb(tmp_path: Path) -> None:
    image, reason = load_and_validate(_save(tmp_path / "ok.png", (40, 30), mode="L", colour=128, fmt="PNG"))
    assert reason is None and image.mode == "RGB" and image.size == (40, 30)


def test_missing_and_corrupt_files_are_rejected(tmp_path: Path) -> None:
    assert load_and_validate(tmp_path / "absent.jpg") == (None, "missing_file")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    assert load_and_validate(garbage) == (None, "undecodable")
    # A real JPEG cut in half passes the header check and fails only when decoded.
    whole = _save(tmp_path / "whole.jpg", (64, 64)).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    assert load_and_validate(truncated) == (None, "undecodable")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert load_and_validate(empty) == (None, "empty_file")


def test_references_read_bytes_inside_tars_and_json_lines(tmp_path: Path) -> None:
    jpeg = _save(tmp_path / "a.jpg", (24, 16)).read_bytes()
    archive = tmp_path / "shard.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("000000001.jpg")
        info.size = len(jpeg)
        tar.addfile(info, io.BytesIO(jpeg))
    with tarfile.open(archive) as tar:
        member = tar.getmember("000000001.jpg")
    reference = input_reference(archive, member=member.name, offset=member.offset_data, size=member.size)
    assert read_input(reference) == (jpeg, None)
    image, reason = load_and_validate(reference)
    assert reason is None and image.size == (24, 16)
    assert load_and_validate(input_reference(archive, missing="000000002.jpg")) == (None, "missing_file")
    assert load_and_validate(input_reference(tmp_path / "gone.tar", member="x.jpg", offset=0, size=3)) == (
        None,
        "missing_file",
    )
    # An index that no longer fits the file (the tar was cut short) is a reject, not a crash.
    assert read_input(input_reference(archive, member="x.jpg", offset=archive.stat().st_size - 2, size=10)) == (
        None,
        "undecodable",
    )

    good = json.dumps({"binary": base64.b64encode(jpeg).decode(), "desc": "a"}) + "\n"
    bad = json.dumps({"binary": "not base64!", "desc": "b"}) + "\n"
    empty = json.dumps({"binary": "", "desc": "c"}) + "\n"
    lines = tmp_path / "part.jsonl"
    lines.write_text(good + bad + empty)
    offsets = [0, len(good), len(good) + len(bad)]
    refs = [
        input_reference(lines, line=n + 1, offset=o, size=len(t), base64="binary")
        for n, (o, t) in enumerate(zip(offsets, (good, bad, empty)))
    ]
    assert load_and_validate(refs[0])[0].size == (24, 16)
    assert load_and_validate(refs[1]) == (None, "undecodable")
    assert load_and_validate(refs[2]) == (None, "empty_file")
    # A '#' in an ordinary file name is part of the path, not a reference.
    hashed = _save(tmp_path / "photo#1.jpg", (20, 20))
    assert load_and_validate(hashed)[1] is None


def test_tiny_and_extreme_aspect_images_are_rejected(tmp_path: Path) -> None:
    assert load_and_validate(_save(tmp_path / "tiny.png", (7, 40), fmt="PNG")) == (None, "too_small")
    assert load_and_validate(_save(tmp_path / "strip.png", (220, 20), fmt="PNG")) == (None, "bad_aspect_ratio")
    image, reason = load_and_validate(_save(tmp_path / "wide.png", (200, 20), fmt="PNG"))  # exactly 10:1 is allowed
    assert reason is None and image.size == (200, 20)
    # Both limits are settings.
    assert load_and_validate(tmp_path / "tiny.png", min_side=4)[1] is None
    assert load_and_validate(tmp_path / "wide.png", max_aspect_ratio=5)[1] == "bad_aspect_ratio"


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    image, reason = load_and_validate(
        _save(tmp_path / "clear.png", (16, 16), mode="RGBA", colour=(255, 0, 0, 0), fmt="PNG")
    )
    assert reason is None and image.getpixel((3, 3)) == (255, 255, 255)


def test_resize_keeps_aspect_ratio_and_never_upscales() -> None:
    image = Image.new("RGB", (200, 100))
    resized, scale = resize_max_side(image, 50)
    assert resized.size == (50, 25) and scale == 0.25
    tall, scale = resize_max_side(Image.new("RGB", (90, 300)), 100)
    assert tall.size == (30, 100) and scale == pytest.approx(1 / 3)
    same, scale = resize_max_side(image, 400)
    assert same is image and scale == 1.0


def test_box_scaling_follows_the_resize() -> None:
    assert scale_box([10, 20, 30, 40], 0.25) == [2.5, 5.0, 7.5, 10.0]
    assert scale_box([1, 1, 1, 1], 1 / 3) == [0.33, 0.33, 0.33, 0.33]
    # A box drawn on the original lands on the same pixels after resizing.
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    image.paste((0, 0, 255), (40, 20, 120, 60))  # box [40, 20, 80, 40]
    resized, scale = resize_max_side(image, 100)
    x, y, w, h = scale_box([40, 20, 80, 40], scale)
    assert resized.getpixel((int(x + w / 2), int(y + h / 2))) == (0, 0, 255)
    assert resized.getpixel((int(x + w + 3), int(y + h / 2))) == (255, 255, 255)


def test_encode_jpeg_is_deterministic_and_decodable() -> None:
    image = Image.new("RGB", (32, 24), (10, 200, 60))
    data = encode_jpeg(image)
    assert data == encode_jpeg(image.copy()) and data[:2] == b"\xff\xd8"
    assert encode_jpeg(image, quality=50) != data
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "JPEG" and decoded.size == (32, 24)
