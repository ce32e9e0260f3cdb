"""One world being written: its folder, its seeded random streams, its scene sampler and the records each dataset yields."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from x2vlm_core.data.synthetic.scenes import SceneSampler

# What a format writer returns: the sources.yaml entries of the files it wrote, paths absolute.
SourceEntries = list[dict[str, str]]


class World:
    """Collects the files of one generated world and the record counts each source yields."""

    def __init__(self, out_dir: Path, seed: int, image_size: int):
        self.root = out_dir
        self.size = image_size
        self.seed = seed
        self.sampler = SceneSampler(self.rng("scenes"))
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def rng(self, purpose: str) -> random.Random:
        # Seeded from a string, so the draws do not depend on PYTHONHASHSEED.
        return random.Random(f"x2vlm-shapes-world:{self.seed}:{purpose}")

    def path(self, relative: str) -> str:
        """The absolute path a sources entry gives for a file or folder of the world."""
        return str(self.root / relative)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_json(self, relative: str, obj: Any) -> Path:
        return self.write_bytes(relative, json_bytes(obj))


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def json_line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True) + "\n"
