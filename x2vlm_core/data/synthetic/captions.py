"""Captions of a scene in six phrasings, and the word lists the caption formats store beside them."""

from __future__ import annotations

import random
import re
from typing import Callable

from x2vlm_core.data.synthetic.scenes import Scene, Shape

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")


def listing(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def shapes_word(count: int) -> str:
    return f"{NUMBER_WORDS[count]} shape" + ("" if count == 1 else "s")


def _caption_plain(scene: Scene, order: list[Shape]) -> str:
    return listing([f"a {shape.name}" for shape in order])


def _caption_counted(scene: Scene, order: list[Shape]) -> str:
    return f"{shapes_word(len(order))}: " + listing([f"a {shape.name}" for shape in order])


def _caption_positions(scene: Scene, order: list[Shape]) -> str:
    return listing([f"a {shape.name} {scene.position_of(shape)}" for shape in order])


def _caption_there_is(scene: Scene, order: list[Shape]) -> str:
    return "there is " + listing([f"a {shape.name}" for shape in order])


def _caption_left_to_right(scene: Scene, order: list[Shape]) -> str:
    if len(order) == 1:
        return f"a single {order[0].name}"
    by_x = sorted(order, key=lambda shape: (shape.box[0], shape.box[1]))
    return "from left to right: " + listing([f"a {shape.name}" for shape in by_x])


def _caption_picture(scene: Scene, order: list[Shape]) -> str:
    return "a picture of " + listing([f"a {shape.name}" for shape in order]) + " on a grey background"


CAPTION_TEMPLATES: tuple[Callable[[Scene, list[Shape]], str], ...] = (
    _caption_plain,
    _caption_counted,
    _caption_positions,
    _caption_there_is,
    _caption_left_to_right,
    _caption_picture,
)


def captions(scene: Scene, rng: random.Random, count: int) -> list[str]:
    """``count`` captions in different phrasings, each naming the shapes in a random order."""
    chosen = []
    for template in rng.sample(CAPTION_TEMPLATES, count):
        order = list(scene.shapes)
        rng.shuffle(order)
        chosen.append(template(scene, order))
    return chosen


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())
