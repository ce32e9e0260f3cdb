"""Statements about a pair of scenes, true or false as asked (NLVR2 and MaRVL)."""

from __future__ import annotations

import random

from x2vlm_core.data.synthetic.captions import shapes_word
from x2vlm_core.data.synthetic.scenes import COLOURS, SHAPE_KINDS, Scene


def pair_statement(left: Scene, right: Scene, rng: random.Random, want: bool) -> str:
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
            text = f"both images contain {shapes_word(count)}"
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
