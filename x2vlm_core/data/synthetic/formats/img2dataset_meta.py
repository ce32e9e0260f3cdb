"""The per-sample json that img2dataset writes beside each image, in both its output formats."""

from __future__ import annotations

from typing import Any


def img2dataset_meta(key: str, caption: str, size: int) -> dict[str, Any]:
    return {
        "url": f"https://example.invalid/shapes/{key}.jpg",
        "caption": caption,
        "key": key,
        "status": "success",
        "error_message": None,
        "width": size,
        "height": size,
        "original_width": size,
        "original_height": size,
    }
