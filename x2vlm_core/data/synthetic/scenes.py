"""The shapes world's pictures as data: coloured shapes at known, non-overlapping boxes, and a sampler of new scenes."""

from __future__ import annotations

import random
from dataclasses import dataclass

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 30),
}
SHAPE_KINDS = ("circle", "square", "triangle")
CATEGORY_IDS = {kind: index + 1 for index, kind in enumerate(SHAPE_KINDS)}
MIN_IMAGE_SIZE = 32


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
        a[0] + a[2] + gap <= b[0] or b[0] + b[2] + gap <= a[0] or a[1] + a[3] + gap <= b[1] or b[1] + b[3] + gap <= a[1]
    )
