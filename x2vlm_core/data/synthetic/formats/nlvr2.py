"""NLVR2: image pairs (images/<split>/) and {train,dev,test1}.json lines, one true and one false statement per pair."""

from __future__ import annotations

import json

from x2vlm_core.data.synthetic.datasets import NLVR2
from x2vlm_core.data.synthetic.drawing import png_bytes
from x2vlm_core.data.synthetic.pair_statements import pair_statement
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, num_pairs: int) -> SourceEntries:
    rng = world.rng("nlvr2")
    splits = ["train" if d < 0.7 else "dev" if d < 0.85 else "test1" for d in (rng.random() for _ in range(num_pairs))]
    sources = []
    for split in ("train", "dev", "test1"):
        (world.root / "nlvr2" / "images" / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for pair_number in range(splits.count(split)):
            # Two pairs per "set", numbered like the real identifiers split-set-pair-sentence.
            prefix = f"{split}-{pair_number // 2}-{pair_number % 2}"
            left = world.sampler.sample(world.size, world.size)
            right = world.sampler.sample(world.size, world.size)
            world.write_bytes(f"nlvr2/images/{split}/{prefix}-img0.png", png_bytes(left))
            world.write_bytes(f"nlvr2/images/{split}/{prefix}-img1.png", png_bytes(right))
            labels = [True, False]
            rng.shuffle(labels)  # one true and one false statement per pair: balanced labels
            for sentence_number, label in enumerate(labels):
                entry = {
                    "identifier": f"{prefix}-{sentence_number}",
                    "sentence": pair_statement(left, right, rng, label),
                    "label": "True" if label else "False",
                    "left_url": f"synthetic://nlvr2/{prefix}-img0.png",
                    "right_url": f"synthetic://nlvr2/{prefix}-img1.png",
                    "writer": "synthetic",
                }
                if split == "train":
                    entry["directory"] = str(pair_number // 2 % 100)  # real train images sit in numbered folders
                lines.append(json.dumps(entry, sort_keys=True))
            world.counts[NLVR2][split] += len(labels)
        world.write_bytes(f"nlvr2/{split}.json", "".join(line + "\n" for line in lines).encode("utf-8"))
        # Every split has its file, empty or not; the reader takes the split from the identifiers.
        sources.append(
            {
                "format": "nlvr2",
                "dataset": NLVR2,
                "annotations": world.path(f"nlvr2/{split}.json"),
                "images": world.path("nlvr2/images"),
            }
        )
    return sources
