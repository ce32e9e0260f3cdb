"""Scenes drawn as pictures, and their encoded bytes (fixed JPEG quality, so the same scene gives the same bytes)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from x2vlm_core.data.synthetic.scenes import COLOURS, Scene

BACKGROUND = (235, 235, 235)
JPEG_QUALITY = 90


def render(scene: Scene) -> Image.Image:
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        x, y, w, h = shape.box
        fill = COLOURS[shape.colour]
        if shape.kind == "circle":
            draw.ellipse([x, y, x + w - 1, y + h - 1], fill=fill)
        elif shape.kind == "square":
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=fill)
        else:
            draw.polygon([(x + w / 2, y), (x, y + h - 1), (x + w - 1, y + h - 1)], fill=fill)
    return image


def jpeg_bytes(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    render(scene).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def png_bytes(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    render(scene).save(buffer, format="PNG")
    return buffer.getvalue()
