"""Short clips of 1-2 shapes moving left, right, up or down: sampling, captions, questions and MP4 bytes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from x2vlm_core.data.synthetic.captions import listing, shapes_word
from x2vlm_core.data.synthetic.drawing import render
from x2vlm_core.data.synthetic.scenes import COLOURS, SHAPE_KINDS, Scene, Shape

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
VIDEO_FRAMES = (3, 8)  # fewest and most frames of a clip


@dataclass(frozen=True)
class Mover:
    shape: Shape  # its box at the first frame
    direction: str

    def box_at(self, frame: int, step: int) -> tuple[int, int, int, int]:
        dx, dy = DIRECTIONS[self.direction]
        x, y, w, h = self.shape.box
        return (x + dx * step * frame, y + dy * step * frame, w, h)


@dataclass(frozen=True)
class Clip:
    size: int
    frames: int
    movers: tuple[Mover, ...]

    @property
    def step(self) -> int:
        return max(1, self.size // 20)

    def scenes(self) -> list[Scene]:
        return [
            Scene(
                self.size,
                self.size,
                tuple(Shape(m.shape.colour, m.shape.kind, m.box_at(f, self.step)) for m in self.movers),
            )
            for f in range(self.frames)
        ]


def sample_clip(size: int, rng: random.Random, seen: set[Clip]) -> Clip:
    """A clip not in ``seen`` (and added to it), ``size`` pixels square."""
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
            movers.append(Mover(Shape(colour, kind, box), direction))
        clip = Clip(size, frames, tuple(movers))
        if clip not in seen:
            seen.add(clip)
            return clip


def clip_captions(clip: Clip, rng: random.Random, count: int) -> list[str]:
    def moving(mover: Mover, verb: str) -> str:
        return f"a {mover.shape.name} {verb} {mover.direction}"

    templates = (
        lambda movers: listing([moving(m, "moving") for m in movers]),
        lambda movers: listing([moving(m, "moves") for m in movers]),
        lambda movers: "a video of " + listing([moving(m, "going") for m in movers]),
        lambda movers: (
            f"{shapes_word(len(movers))} moving: " + listing([f"the {m.shape.name} goes {m.direction}" for m in movers])
        ),
        lambda movers: "a clip where " + listing([moving(m, "slides") for m in movers]),
    )
    captions = []
    for template in rng.sample(templates, count):
        movers = list(clip.movers)
        rng.shuffle(movers)
        captions.append(template(movers))
    return captions


def clip_questions(clip: Clip, rng: random.Random) -> list[tuple[str, str]]:
    """Two questions with one-word answers: which way a shape moves, and which shape moves a given way."""
    mover = rng.choice(clip.movers)
    other = rng.choice(clip.movers)
    return [
        (f"which way does the {mover.shape.name} move?", mover.direction),
        (f"what color is the shape moving {other.direction}?", other.shape.colour),
    ]


def mp4_bytes(clip: Clip) -> bytes:
    from x2vlm_core.data.video import encode_mp4

    return encode_mp4([render(scene) for scene in clip.scenes()])
