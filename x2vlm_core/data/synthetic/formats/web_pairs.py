"""The web-scale formats' samples: each a new scene with one caption, from the format's own random stream."""

from __future__ import annotations

from x2vlm_core.data.synthetic.captions import captions
from x2vlm_core.data.synthetic.scenes import Scene
from x2vlm_core.data.synthetic.world import World


def web_pairs(world: World, count: int, purpose: str) -> list[tuple[Scene, str]]:
    rng = world.rng(purpose)
    pairs = []
    for _ in range(count):
        scene = world.sampler.sample(world.size, world.size)
        pairs.append((scene, captions(scene, rng, 1)[0]))
    return pairs
