"""Image → tensor, as the official X²-VLM does it: bicubic resize, CLIP mean/std.

Training batches carry uint8 pixels (``image_to_uint8``) and are normalised where they are
consumed (``normalize_images``, on the training device): a quarter of the bytes of float32
cross from the DataLoader workers, and the arithmetic runs on the GPU instead of the workers.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from x2vlm_core.data.images import MAX_PIXELS
from x2vlm_core.errors import DataError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _bad_bytes(key: str, exc: Exception) -> DataError:
    return DataError(f"sample {key}: image bytes cannot be decoded ({exc}); re-run prepare-data")


def open_image(data: bytes, key: str = "?") -> Image.Image:
    """The image with only its header read: size and format known, pixels not decoded yet."""
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as exc:  # PIL raises many types for bad bytes
        raise _bad_bytes(key, exc) from None
    if image.width * image.height > MAX_PIXELS:  # shards are not trusted: refuse a bomb before decoding it
        raise DataError(
            f"sample {key}: image declares {image.width}x{image.height} pixels, more than the "
            f"{MAX_PIXELS} allowed; re-run prepare-data"
        )
    return image


def load_rgb(image: Image.Image, key: str = "?") -> Image.Image:
    """Decode an opened image's pixels as RGB."""
    try:
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")
    except Exception as exc:
        raise _bad_bytes(key, exc) from None


def decode_image(data: bytes, key: str = "?") -> Image.Image:
    return load_rgb(open_image(data, key), key)


def decode_for_crop(
    image: Image.Image, box: tuple[float, float, float, float], out_size: int, key: str = "?"
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Decode an opened image for a crop ``box`` (left, top, right, bottom) that will be resized to ``out_size``.

    A JPEG decodes at 1/2, 1/4 or 1/8 scale (in the DCT, far cheaper than decoding in full and
    shrinking) when the crop still spans at least ``out_size`` pixels each way at that scale, so
    the resize that follows never upsamples more than from the full image. Returns the decoded
    image and ``box`` in its pixels.
    """
    width, height = image.size
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    # draft picks the largest scale s with size // asked >= s; asking for size * out / crop keeps crop / s >= out.
    asked = (math.ceil(width * out_size / crop_w), math.ceil(height * out_size / crop_h))
    try:
        drafted = image.draft(None, asked)  # None for formats without scaled decoding (PNG) or once loaded
    except Exception as exc:
        raise _bad_bytes(key, exc) from None
    image = load_rgb(image, key)
    if drafted is None:
        return image, box
    scale = width / drafted[1][2]  # the draft box is the whole image in decoded pixels
    return image, (box[0] / scale, box[1] / scale, box[2] / scale, box[3] / scale)


def image_to_uint8(image: Image.Image) -> torch.Tensor:
    """``[3, H, W]`` uint8 pixels of an RGB image (one copy, no per-pixel Python)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def normalize_images(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels ``[..., 3, H, W]`` → float32 with CLIP mean/std, on the pixels' device."""
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def square_uint8(image: Image.Image, image_res: int) -> torch.Tensor:
    """Square resize (boxes given as fractions of width/height are unchanged by it), as uint8 pixels."""
    return image_to_uint8(image.resize((image_res, image_res), Image.Resampling.BICUBIC))


def image_to_tensor(image: Image.Image, image_res: int) -> torch.Tensor:
    """Square resize, normalised: the evaluation input."""
    return normalize_images(square_uint8(image, image_res))
