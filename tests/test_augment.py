"""Train-time augmentation: random resized crops, careful flips, RandAugment, the region sampler, frames."""

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from x2vlm_core.data.augment import (
    COLOUR_OPERATIONS,
    IMAGE_OPERATIONS,
    OPERATIONS,
    AugmentConfig,
    augment_image,
    rand_augment,
    random_resized_crop_box,
    should_flip,
)
from x2vlm_core.data.collate import (
    TextEncoder,
    augmented_pixels,
    pretrain_image_text_batch,
    pretrain_region_batch,
    sample_frame_indices,
    sample_rng,
)
from x2vlm_core.data.masking import MaskingConfig
from x2vlm_core.data.region_sampler import exact_size_selection, sample_regions, visible_part
from x2vlm_core.data.transforms import decode_for_crop, decode_image, image_to_uint8, open_image

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")  # lossless: colours survive exactly
    return out.getvalue()


def _scene(size=(120, 80)) -> tuple[Image.Image, dict]:
    """A red square on the left and a blue square on the right, as a region sample's image and meta."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 20, 39, 49), fill=RED)  # x, y, w, h = 10, 20, 30, 30
    draw.rectangle((80, 30, 99, 49), fill=BLUE)  # 80, 30, 20, 20
    meta = {
        "width": size[0],
        "height": size[1],
        "captions": [],
        "regions": [
            {"bbox": [10, 20, 30, 30], "caption": "red square"},
            {"bbox": [80, 30, 20, 20], "caption": "blue square", "attributes": ["small"]},
        ],
    }
    return image, meta


def test_random_resized_crop_stays_inside_and_within_the_area_range():
    rng = random.Random(0)
    for _ in range(200):
        left, top, w, h = random_resized_crop_box(100, 60, rng, (0.2, 1.0))
        assert 0 <= left and left + w <= 100 and 0 <= top and top + h <= 60
        assert 0.2 * 6000 * 0.9 <= w * h <= 6000
    assert random_resized_crop_box(100, 60, random.Random(7), (0.2, 1.0)) == random_resized_crop_box(
        100, 60, random.Random(7), (0.2, 1.0)
    )


def test_flips_never_happen_when_a_text_says_left_or_right():
    rng = random.Random(0)
    assert not any(should_flip(["the dog on the LEFT"], rng, True) for _ in range(100))
    assert not any(should_flip(["a cat"], rng, False) for _ in range(100))
    flips = sum(should_flip(["a leftover sandwich", "bright lights"], rng, True) for _ in range(1000))
    assert 400 < flips < 600  # whole words only: "leftover" and "bright" allow flipping


def test_rand_augment_draws_from_its_list_and_keeps_the_size():
    image = Image.new("RGB", (32, 24), (100, 150, 200))
    assert set(COLOUR_OPERATIONS) < set(IMAGE_OPERATIONS) == set(OPERATIONS)
    for seed in range(20):
        out = rand_augment(image, random.Random(seed), 2, 7)
        assert out.size == image.size and out.mode == "RGB"
    # Colour operations never move pixels: a flat image stays flat.
    flat = rand_augment(Image.new("RGB", (8, 8), (90, 90, 90)), random.Random(3), 4, 7, COLOUR_OPERATIONS)
    assert len(set(flat.getdata())) == 1
    augmented = augment_image(image, ["x"], 16, random.Random(1), AugmentConfig())
    assert augmented.size == (16, 16)


def test_region_sampler_moves_boxes_with_the_crop_and_the_flip():
    image, meta = _scene()
    seen_flip = seen_plain = False
    for seed in range(60):
        out, rows = sample_regions(image, meta, 64, max_regions=5, min_visible=0.5, flip=True, rng=random.Random(seed))
        assert out.size == (64, 64) and 1 <= len(rows) <= 2
        for row in rows:
            x, y, w, h = row.box
            assert 0 <= x and x + w <= 64.001 and 0 <= y and y + h <= 64.001
            # The centre of each kept box shows that region's colour in the output image.
            pixel = out.getpixel((int(x + w / 2), int(y + h / 2)))
            expected = RED if "red" in row.text else BLUE
            assert max(abs(a - b) for a, b in zip(pixel, expected)) < 60, (seed, row, pixel)
        texts = {r.text for r in rows}
        assert texts <= {"red square", "small blue square"}
        red = [r for r in rows if "red" in r.text]
        blue = [r for r in rows if "blue" in r.text]
        if red and blue:
            seen_flip |= red[0].box[0] > blue[0].box[0]
            seen_plain |= red[0].box[0] < blue[0].box[0]
    assert seen_flip and seen_plain


def test_region_sampler_keeps_only_boxes_mostly_inside_and_never_flips_left_right_texts():
    image, meta = _scene()
    meta = {**meta, "captions": ["squares, one on the left"], "regions": meta["regions"]}
    both = 0
    for seed in range(40):
        _, rows = sample_regions(image, meta, 64, max_regions=3, min_visible=0.5, flip=True, rng=random.Random(seed))
        assert rows[0].is_image and rows[0].box == (0.0, 0.0, 64.0, 64.0) and len(rows) <= 3
        boxes = {r.text: r.box for r in rows[1:]}
        if len(boxes) == 2:  # never mirrored: the caption says "left"
            both += 1
            assert boxes["red square"][0] < boxes["small blue square"][0]
        _, rows = sample_regions(image, meta, 64, max_regions=2, min_visible=0.5, flip=True, rng=random.Random(seed))
        assert len(rows) == 2
    assert both > 5


def test_a_box_counts_only_when_more_than_the_minimum_is_visible():
    window = (10, 0, 50, 40)  # left, top, right, bottom
    assert visible_part((0, 0, 20, 10), window, 0.5) is None  # exactly half inside: dropped
    assert visible_part((2, 0, 20, 10), window, 0.5) == (0, 0, 12, 10)  # 60% inside: clipped to the window
    assert visible_part((60, 0, 5, 5), window, 0.5) is None
    assert visible_part((20, 5, 10, 10), window, 0.5) == (10, 5, 10, 10)


def test_exact_size_selection():
    rng = random.Random(0)
    picked = exact_size_selection([3, 2, 4], 6, rng)
    assert len(picked) == 6 == len(set(picked))
    short = exact_size_selection([1, 2], 5, rng)
    assert len(short) == 5 and set(short) == {(0, 0), (1, 0), (1, 1)}
    assert len(exact_size_selection([1], 7, rng)) == 7


def test_frame_sampling_one_per_segment_and_padding_short_clips():
    rng = random.Random(0)
    for _ in range(50):
        picked = sample_frame_indices(10, 3, rng)
        assert picked == sorted(picked) and len(set(picked)) == 3 and all(0 <= i < 10 for i in picked)
    assert sample_frame_indices(2, 3, rng)[:1] == [0] and len(sample_frame_indices(2, 3, rng)) == 3
    assert sample_frame_indices(3, 3, rng) == [0, 1, 2]


@pytest.fixture(scope="module")
def text():
    return TextEncoder("builtin:bert-base-uncased", 24)


def test_a_sample_is_processed_the_same_in_any_batch(text):
    """Augmentation and masking follow the sample's seed, not the batch or rank it lands in."""
    image, _ = _scene()
    samples = [
        {
            "key": f"k{i}",
            "seed": f"s{i}",
            "images": [_jpeg(image)],
            "meta": {"captions": [f"caption number {i}", f"another caption {i}"]},
        }
        for i in range(3)
    ]
    together = pretrain_image_text_batch(samples, text, 32, MaskingConfig(), AugmentConfig())
    alone = pretrain_image_text_batch(samples[2:], text, 32, MaskingConfig(), AugmentConfig())
    torch.testing.assert_close(together["image"][2], alone["image"][0])
    length = int(alone["text_atts"][0].sum())
    assert torch.equal(together["text_ids_masked"][2, :length], alone["text_ids_masked"][0, :length])


def test_region_batch_has_exactly_the_asked_number_of_texts(text):
    image, meta = _scene()
    samples = [{"key": f"k{i}", "seed": f"s{i}", "images": [_jpeg(image)], "meta": meta} for i in range(3)]
    for size in (2, 5, 9):
        batch = pretrain_region_batch(
            samples, text, 32, 4, max_regions=5, batch_size=size, masking=MaskingConfig(), augment=AugmentConfig()
        )
        assert batch["text_ids"].shape[0] == batch["image_atts"].shape[0] == batch["target_bbox"].shape[0] == size
        assert batch["image"].shape == (3, 3, 32, 32) and batch["image_atts"].shape[1] == 17
        assert batch["idx_to_group_img"].max() < 3 and (batch["is_image"] == 0).all()
        assert ((batch["target_bbox"] > 0) & (batch["target_bbox"] <= 1)).all()


def test_video_batch_stacks_sampled_frames(text):
    from x2vlm_core.data.collate import pretrain_video_text_batch

    frames = [_jpeg(Image.new("RGB", (40, 30), (10 * i, 0, 0))) for i in range(5)]
    samples = [
        {"key": f"v{i}", "seed": f"s{i}", "images": frames, "meta": {"captions": ["a clip"], "num_frames": 5}}
        for i in range(2)
    ]
    batch = pretrain_video_text_batch(samples, text, 32, 3, MaskingConfig(), AugmentConfig())
    assert batch["image"].shape == (2, 3, 3, 32, 32) and batch["text_ids"].shape[0] == 2


def _photo_jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    """A smooth, textured JPEG: a crop placed or scaled wrongly would change its pixels visibly."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size[1] // 40 + 2, size[0] // 40 + 2, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(coarse).resize(size, Image.BICUBIC).save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_draft_decoding_keeps_the_crop_at_least_the_output_size():
    data = _photo_jpeg((1600, 1200))
    cases = {  # crop box (left, top, right, bottom) -> the decode scale it allows for a 224 output
        (0, 0, 1600, 1200): 4,  # 1200 / 224 = 5.4: 1/4 scale keeps 300 rows
        (100, 50, 1100, 550): 2,  # 500 rows / 224 = 2.2
        (10, 10, 240, 700): 1,  # 230 columns: any reduction would upsample
        (7, 3, 7 + 449, 3 + 900): 2,
    }
    for box, scale in cases.items():
        image, decoded_box = decode_for_crop(open_image(data), box, 224)
        assert image.size == (1600 // scale, 1200 // scale) and image.mode == "RGB"
        assert decoded_box == pytest.approx([v / scale for v in box])
        assert decoded_box[2] - decoded_box[0] >= 224 and decoded_box[3] - decoded_box[1] >= 224


def test_draft_decoded_crops_show_the_same_content_as_full_decodes():
    data = _photo_jpeg((1600, 1200), seed=1)
    plain = AugmentConfig(flip=False, randaug_ops=0)  # geometry only: small decode differences stay small
    for seed in range(8):
        fast = augmented_pixels(data, "k", ["x"], 64, random.Random(seed), plain).float()
        full = image_to_uint8(augment_image(decode_image(data), ["x"], 64, random.Random(seed), plain)).float()
        assert (fast - full).abs().mean() < 3, seed  # a misplaced or rescaled crop differs by tens


def test_batches_hold_exactly_augment_images_uint8_pixels_when_no_draft_applies(text):
    samples = [
        {"key": f"k{i}", "seed": f"s{i}", "images": [data], "meta": {"captions": ["a", "b"]}}
        for i, data in enumerate([_jpeg(_scene()[0]), _photo_jpeg((120, 90)), _photo_jpeg((127, 100), 2)])
    ]
    # Under 2 x 64 px: no crop can be decoded at half scale.
    batch = pretrain_image_text_batch(samples, text, 64, MaskingConfig(), AugmentConfig())
    expected = []
    for sample in samples:
        rng = sample_rng(sample)
        caption = rng.choice(sample["meta"]["captions"])
        expected.append(
            image_to_uint8(augment_image(decode_image(sample["images"][0]), [caption], 64, rng, AugmentConfig()))
        )
    assert batch["image"].dtype == torch.uint8 and torch.equal(batch["image"], torch.stack(expected))
