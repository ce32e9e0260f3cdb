"""Image checks and transforms for data preparation: load, validate, resize, re-encode.

Pure PIL, so the core can validate images without Beam or torch.

An image input is named by a string: a file path or gs:// URI, or a *reference* to bytes inside a
bigger file, so that readers of archive formats hand on small records instead of image bytes::

    /data/cc3m/00000.tar#member=000000012.jpg&offset=1536&size=20480
        the bytes of one tar member (img2dataset webdataset output)
    /data/cc3m/00000.tar#missing=000000013.jpg
        a member the archive lacks: rejected as missing_file
    /data/x2vlm/part-0.jsonl#line=7&offset=1200&size=30000&base64=binary
        one JSON line of that file, whose field ``binary`` holds the base64 image (X²-VLM json-lines)

``input_reference`` writes these strings and ``read_input`` resolves them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from PIL import Image

from x2vlm_core import storage
from x2vlm_core.gcs_path import AnyPath

# Reject reasons, as written to rejects.jsonl and stats.json.
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
UNDECODABLE = "undecodable"
TOO_LARGE = "too_large"
TOO_SMALL = "too_small"
BAD_ASPECT_RATIO = "bad_aspect_ratio"

DEFAULT_MIN_SIDE = 8
DEFAULT_MAX_ASPECT_RATIO = 10.0
# Larger than any photo in the supported datasets, and still decodable in a few hundred MB:
# a few hundred KB of PNG can declare 144 Mpx and need gigabytes to decode. Pillow warns
# above its limit and refuses above twice it; set here so every decode in the process shares it.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_REFERENCE = re.compile(r"(?P<path>.+)#(?P<locator>(?:member|missing|line)=[^#/]*)")


def input_reference(path: str | AnyPath, **locator: str | int) -> str:
    """``path#key=value&...``: bytes inside ``path`` (see the module docstring for the keys)."""
    return f"{path}#{urlencode(locator)}"


def input_file(name: str | AnyPath) -> str:
    """The file an image input is read from: the path itself, or the file a reference points into."""
    match = _REFERENCE.fullmatch(str(name))
    return match["path"] if match else str(name)


def read_input(name: str | Path) -> tuple[bytes | None, str | None]:
    """The bytes an image input names (a local path or gs:// URI, or a reference into one): ``(data, None)``
    or ``(None, reject_reason)``. Only the bytes named are read, in one request on GCS."""
    match = _REFERENCE.fullmatch(str(name))
    file = match["path"] if match else str(name)
    locator = dict(parse_qsl(match["locator"])) if match else {}
    if "missing" in locator:
        return None, MISSING_FILE
    try:
        if "offset" in locator:
            size = int(locator["size"])
            data = storage.read_range(file, int(locator["offset"]), size)
            if len(data) != size:
                return None, UNDECODABLE  # the file shrank since it was indexed
        else:
            data = storage.read_bytes(file)
    except storage.NotFound:
        return None, MISSING_FILE
    if "base64" not in locator:
        return (data, None) if data else (None, EMPTY_FILE)
    try:
        encoded = json.loads(data)[locator["base64"]]
        data = base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None, UNDECODABLE
    return (data, None) if data else (None, EMPTY_FILE)


def load_and_validate(
    name: str | Path,
    *,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
) -> tuple[Image.Image | None, str | None]:
    """Decode the image ``name`` refers to (a path or a reference) fully into RGB.

    Returns ``(image, None)`` or ``(None, reject_reason)``. EXIF orientation is deliberately
    not applied: COCO/VG boxes are annotated on the stored pixel layout, so rotating would
    misplace every box.
    """
    data, reason = read_input(name)
    if reason is not None:
        return None, reason
    assert data is not None  # read_input returns either the bytes or a reason
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it: a bomb all the same, so a reject.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:  # the header's size, before any pixel is decoded
                    return None, TOO_LARGE
                opened.load()  # decode now: truncated files only fail here
                image = _to_rgb(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
        return None, TOO_LARGE  # one image must not take the worker down with it
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError):
        return None, UNDECODABLE
    return validate_size(image, min_side=min_side, max_aspect_ratio=max_aspect_ratio)


def validate_size(
    image: Image.Image, *, min_side: int = DEFAULT_MIN_SIDE, max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
) -> tuple[Image.Image | None, str | None]:
    """``(image, None)`` if it is big enough and not too elongated, else ``(None, reason)``."""
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
