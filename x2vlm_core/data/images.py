"""Image checks and transforms for data preparation: load, validate, resize, re-encode.

Pure PIL, so the core can validate images without Beam or torch.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image

# Reject reasons, as written to rejects.jsonl and stats.json.
MISSING_FILE = "missing_file"
UNDECODABLE = "undecodable"
TOO_LARGE = "too_large"
TOO_SMALL = "too_small"
BAD_ASPECT_RATIO = "bad_aspect_ratio"

DEFAULT_MIN_SIDE = 8
DEFAULT_MAX_ASPECT_RATIO = 10.0


def load_and_validate(
    path: str | Path,
    *,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
) -> tuple[Image.Image | None, str | None]:
    """Decode ``path`` fully into RGB; return ``(image, None)`` or ``(None, reject_reason)``.

    EXIF orientation is deliberately not applied: COCO/VG boxes are annotated on the
    stored pixel layout, so rotating would misplace every box.
    """
    path = Path(path)
    if not path.is_file():
        return None, MISSING_FILE
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than raises) on large-but-allowed images; the size checks below decide.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()  # decode now: truncated files only fail here
                image = _to_rgb(opened)
    except Image.DecompressionBombError:
        return None, TOO_LARGE
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError):
        return None, UNDECODABLE
    width, height = image.size
    if min(width, height) < min_side:
        return None, TOO_SMALL
    if max(width, height) / min(width, height) > max_aspect_ratio:
        return None, BAD_ASPECT_RATIO
    return image, None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy; transparent pixels become white instead of the black a plain convert gives."""
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def resize_max_side(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """Shrink so the longer side is at most ``max_side``, keeping the aspect ratio.

    Returns the image and the factor applied to coordinates (1.0 when unchanged; never upscales).
    """
    width, height = image.size
    longer = max(width, height)
    if longer <= max_side:
        return image, 1.0
    scale = max_side / longer
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(new_size, Image.Resampling.BICUBIC), scale


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """JPEG bytes with fixed settings, so the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def scale_box(bbox: list[float], scale: float) -> list[float]:
    """Scale an ``[x, y, w, h]`` box; rounded to 1/100 px so the JSON stays short and stable."""
    return [round(value * scale, 2) for value in bbox]
