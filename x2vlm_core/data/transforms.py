"""Image → tensor, as the official X²-VLM does it: bicubic resize, CLIP mean/std."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from x2vlm_core.errors import DataError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def decode_image(data: bytes, key: str = "?") -> Image.Image:
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as exc:  # PIL raises many types for bad bytes
        raise DataError(f"sample {key}: image bytes cannot be decoded ({exc}); re-run prepare-data") from None


def image_to_tensor(image: Image.Image, image_res: int) -> torch.Tensor:
    """Square resize (boxes given as fractions of width/height are unchanged by it)."""
    image = image.resize((image_res, image_res), Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (tensor - mean) / std
