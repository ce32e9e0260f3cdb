"""Video inputs: a fixed number of frames per clip, sampled as the official X²-VLM video tasks do.

A video sample holds its frames as the image list. Training draws one frame at random from each
of ``count`` equal segments (segment lengths shuffled); evaluation takes the first frame of each
segment. Clips with fewer frames than needed repeat frames (at random when training).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from x2vlm_core.data.transforms import decode_image, image_to_tensor


def frame_indices(available: int, count: int, training: bool, rng: random.Random) -> list[int]:
    if available <= count:
        if training:
            chosen = list(range(available)) + [rng.randrange(available) for _ in range(count - available)]
        else:
            chosen = [i % available for i in range(count)]
        return sorted(chosen)
    stride, extra = divmod(available, count)
    lengths = [stride + 1] * extra + [stride] * (count - extra)
    if training:
        rng.shuffle(lengths)
    indices, start = [], 0
    for length in lengths:
        indices.append(start + rng.randrange(length) if training else start)
        start += length
    return indices


def video_batch(
    samples: list[dict[str, Any]], image_res: int, count: int, training: bool, rng: random.Random
) -> torch.Tensor:
    """``[B, count, 3, H, W]`` frames of each sample."""
    clips = []
    for sample in samples:
        frames = sample["images"]
        clips.append(
            torch.stack(
                [
                    image_to_tensor(decode_image(frames[i], sample["key"]), image_res)
                    for i in frame_indices(len(frames), count, training, rng)
                ]
            )
        )
    return torch.stack(clips)
