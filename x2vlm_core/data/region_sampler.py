"""Region-text samples as X²-VLM pre-trains on them, and the exact-size region batch.

For each image: crop a random window around one randomly chosen box, flip unless a text says
left or right, resize to ``image_res``, then keep up to ``max_regions`` texts (a whole-image
caption first, then regions in random order) whose boxes stay more than ``min_visible``
inside the crop, clipped to it. A batch then keeps exactly ``batch_size`` of all its images'
texts (padding by repetition when short), with ``idx_to_group_img`` naming each text's image.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image

from x2vlm_core.data.augment import should_flip


@dataclass(frozen=True)
class RegionRow:
    text: str
    box: tuple[float, float, float, float]  # x, y, w, h in pixels of the resized image
    is_image: bool  # a whole-image caption: no box of its own


def region_text(region: dict[str, Any], rng: random.Random) -> str:
    """A region's caption (one at random if several), prefixed by its attributes when given."""
    caption = region["caption"]
    caption = rng.choice(caption) if isinstance(caption, list) else caption
    attributes = region.get("attributes")
    if attributes:
        attributes = rng.choice(attributes) if isinstance(attributes, list) else attributes
        caption = f"{attributes} {caption}"
    return caption


def _clip(box: list[float], width: int, height: int) -> tuple[float, float, float, float] | None:
    x, y, w, h = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def crop_around(
    box: tuple[float, float, float, float], width: int, height: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """A random window ``(left, top, right, bottom)`` that contains ``box`` whole."""
    x, y, w, h = box
    left, top = rng.randint(0, math.floor(x)), rng.randint(0, math.floor(y))
    right = rng.randint(min(math.ceil(x + w), width), width)
    bottom = rng.randint(min(math.ceil(y + h), height), height)
    return left, top, right, bottom


def visible_part(
    box: tuple[float, float, float, float], window: tuple[int, int, int, int], min_visible: float
) -> tuple[float, float, float, float] | None:
    """The part of ``box`` inside ``window`` (left, top, right, bottom), in window pixels, if more than
    ``min_visible`` of the box's area is inside; else None."""
    x, y, w, h = box
    left, top, right, bottom = window
    x0, y0, x1, y1 = max(x, left), max(y, top), min(x + w, right), min(y + h, bottom)
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) / (w * h) <= min_visible:
        return None
    return x0 - left, y0 - top, x1 - x0, y1 - y0


def sample_regions(
    image: Image.Image,
    meta: dict[str, Any],
    image_res: int,
    max_regions: int,
    min_visible: float,
    flip: bool,
    rng: random.Random,
) -> tuple[Image.Image, list[RegionRow]]:
    """The cropped, maybe flipped, resized image and its (at most ``max_regions``) texts."""
    width, height = image.size
    regions = [
        (region, clipped)
        for region in meta.get("regions", [])
        if (clipped := _clip(region["bbox"], width, height)) is not None
    ]
    captions = meta.get("captions") or []
    if isinstance(captions, str):
        captions = [captions]
    if regions:
        left, top, right, bottom = crop_around(rng.choice(regions)[1], width, height, rng)
    else:
        left, top, right, bottom = 0, 0, width, height
    crop_w, crop_h = right - left, bottom - top
    texts = [region_text(region, rng) for region, _ in regions]
    caption = rng.choice(captions) if captions else None
    flipped = should_flip(texts + ([caption] if caption else []), rng, flip)
    image = image.crop((left, top, right, bottom))
    if flipped:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.resize((image_res, image_res), Image.Resampling.BICUBIC)

    rows: list[RegionRow] = []
    if caption is not None:
        rows.append(RegionRow(caption, (0.0, 0.0, float(image_res), float(image_res)), True))
    order = list(range(len(regions)))
    rng.shuffle(order)
    sx, sy = image_res / crop_w, image_res / crop_h
    for index in order:
        if len(rows) >= max_regions:
            break
        part = visible_part(regions[index][1], (left, top, right, bottom), min_visible)
        if part is None:
            continue
        bx, by, bw, bh = part
        if flipped:
            bx = crop_w - bx - bw
        rows.append(RegionRow(texts[index], (bx * sx, by * sy, bw * sx, bh * sy), False))
    return image, rows


def exact_size_selection(rows_per_image: list[int], batch_size: int, rng: random.Random) -> list[tuple[int, int]]:
    """``(image, row)`` pairs: ``batch_size`` of all rows, sampled without repetition unless too few.

    Every rank must hand the model the same number of texts (the collectives need equal
    shapes), so a short batch repeats some of its rows, as the official collate does.
    """
    every = [(image, row) for image, count in enumerate(rows_per_image) for row in range(count)]
    if not every:
        return []
    if len(every) >= batch_size:
        return rng.sample(every, batch_size)
    extra = batch_size - len(every)
    if extra <= len(every):
        return every + rng.sample(every, extra)
    return (every * math.ceil(batch_size / len(every)))[:batch_size]
