"""Train-time image augmentation, as X²-VLM pre-trains: RandomResizedCrop + flip + RandAugment.

Plain PIL with an explicit ``random.Random``, so each sample's augmentation follows from its
own seed (the same on any rank, worker or resume) and no torchvision or OpenCV is needed.
RandAugment applies ``N`` operations drawn with replacement, each with probability 0.5, at a
fixed magnitude ``M`` of 10; the operation lists and the magnitude scales are the official ones.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from PIL import Image, ImageEnhance, ImageOps

MAX_MAGNITUDE = 10
FILL = (128, 128, 128)  # grey for pixels that geometric operations uncover
TRANSLATE_PIXELS = 10  # at full magnitude


@dataclass
class AugmentConfig:
    """Train-time image augmentation (the official pre-training recipe by default)."""

    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])  # RandomResizedCrop area range
    flip: bool = True  # horizontal flip with p=0.5, never when one of the image's texts says left or right
    randaug_ops: int = 2  # RandAugment N
    randaug_magnitude: int = 7  # RandAugment M (of 10)
    min_visible: float = 0.5  # region sampler: keep boxes with more than this fraction inside the crop


_LEFT_RIGHT = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def _enhance(kind) -> Callable[[Image.Image, float, random.Random], Image.Image]:
    # Magnitude 0..10 maps to an enhancement factor 0.1..1.9 (1.0 is the identity).
    return lambda image, level, rng: kind(image).enhance(level * 1.8 + 0.1)


def _signed(value: float, rng: random.Random) -> float:
    return -value if rng.random() < 0.5 else value


def _affine(image: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    return image.transform(
        image.size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR, fillcolor=FILL
    )


OPERATIONS: dict[str, Callable[[Image.Image, float, random.Random], Image.Image]] = {
    "Identity": lambda image, level, rng: image,
    "AutoContrast": lambda image, level, rng: ImageOps.autocontrast(image),
    "Equalize": lambda image, level, rng: ImageOps.equalize(image),
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "ShearX": lambda image, level, rng: _affine(image, (1, _signed(level * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda image, level, rng: _affine(image, (1, 0, 0, _signed(level * 0.3, rng), 1, 0)),
    "TranslateX": lambda image, level, rng: _affine(image, (1, 0, _signed(level * TRANSLATE_PIXELS, rng), 0, 1, 0)),
    "TranslateY": lambda image, level, rng: _affine(image, (1, 0, 0, 0, 1, _signed(level * TRANSLATE_PIXELS, rng))),
    "Rotate": lambda image, level, rng: image.rotate(
        _signed(level * 30, rng), resample=Image.Resampling.BILINEAR, fillcolor=FILL
    ),
}
# Whole images may move; region images keep their boxes, so they only change colour.
IMAGE_OPERATIONS = tuple(OPERATIONS)
COLOUR_OPERATIONS = ("Identity", "AutoContrast", "Equalize", "Brightness", "Sharpness")


def rand_augment(
    image: Image.Image, rng: random.Random, num_ops: int, magnitude: int, operations: Iterable[str] = IMAGE_OPERATIONS
) -> Image.Image:
    names = list(operations)
    level = magnitude / MAX_MAGNITUDE
    for name in [rng.choice(names) for _ in range(num_ops)]:
        if rng.random() < 0.5:
            image = OPERATIONS[name](image, level, rng)
    return image


def random_resized_crop_box(
    width: int, height: int, rng: random.Random, scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """``(left, top, w, h)`` covering ``scale`` of the area at an aspect ratio within ``ratio``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    # Rarely reached (very elongated images): the largest central crop within the ratio range.
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def mentions_left_or_right(texts: Iterable[str]) -> bool:
    return any(_LEFT_RIGHT.search(text) for text in texts)


def should_flip(texts: Iterable[str], rng: random.Random, enabled: bool) -> bool:
    """Flip half the time, but never an image whose texts say left or right (they would become false)."""
    return enabled and rng.random() < 0.5 and not mentions_left_or_right(texts)


def crop_corners(width: int, height: int, rng: random.Random, config: AugmentConfig) -> tuple[int, int, int, int]:
    """The RandomResizedCrop box as (left, top, right, bottom), chosen on the full-size image."""
    left, top, w, h = random_resized_crop_box(width, height, rng, (config.crop_scale[0], config.crop_scale[1]))
    return left, top, left + w, top + h


def augment_crop(
    image: Image.Image,
    box: tuple[float, float, float, float],
    texts: Iterable[str],
    image_res: int,
    rng: random.Random,
    config: AugmentConfig,
) -> Image.Image:
    """The rest of ``augment_image`` once the crop box is drawn: one crop+resize (bicubic) → flip → RandAugment."""
    image = image.resize((image_res, image_res), Image.Resampling.BICUBIC, box=box)
    if should_flip(texts, rng, config.flip):
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return rand_augment(image, rng, config.randaug_ops, config.randaug_magnitude)


def augment_image(
    image: Image.Image, texts: Iterable[str], image_res: int, rng: random.Random, config: AugmentConfig
) -> Image.Image:
    """Image-text pre-training augmentation: RandomResizedCrop (bicubic) → flip → RandAugment."""
    box = crop_corners(image.width, image.height, rng, config)
    return augment_crop(image, box, texts, image_res, rng, config)
