"""X²-VLM presets: the official base and large models (image and video), and a tiny one for tests and `make run`."""

from __future__ import annotations

from typing import Any

_BASE_VISION = {"width": 768, "depth": 12, "num_heads": 12, "patch_size": 16}
_LARGE_VISION = {"width": 1024, "depth": 24, "num_heads": 16, "patch_size": 16}
_BASE_TEXT = {"hidden_size": 768, "num_layers": 18, "fusion_start_at": 12, "num_heads": 12, "intermediate_size": 3072}
_LARGE_TEXT = {"hidden_size": 1024, "num_layers": 18, "fusion_start_at": 12, "num_heads": 16, "intermediate_size": 4096}

PRESETS: dict[str, dict[str, Any]] = {
    # BEiT-2 base + 12 text / 6 fusion BERT-base layers: 254.76M parameters.
    "x2vlm_base": {"vision": _BASE_VISION, "text": _BASE_TEXT},
    # BEiT-2 large + 12 text / 6 fusion BERT-large layers: 592.95M parameters.
    "x2vlm_large": {"vision": _LARGE_VISION, "text": _LARGE_TEXT},
    "x2vlm_base_video": {"vision": _BASE_VISION, "text": _BASE_TEXT, "frame_len": 3},
    "x2vlm_large_video": {"vision": _LARGE_VISION, "text": _LARGE_TEXT, "frame_len": 3},
    # A few hundred thousand weights besides the vocabulary: for tests and the local pipeline.
    # Trained from scratch, it needs an absolute position embedding to learn boxes in minutes.
    "x2vlm_tiny": {
        "image_res": 64,
        "embed_dim": 32,
        "max_tokens": 24,
        "vision": {
            "width": 64,
            "depth": 2,
            "num_heads": 4,
            "patch_size": 8,
            "drop_path_rate": 0.0,
            "abs_pos_emb": True,
        },
        "text": {
            "hidden_size": 64,
            "num_layers": 4,
            "fusion_start_at": 2,
            "num_heads": 4,
            "intermediate_size": 128,
            "max_position_embeddings": 64,
        },
    },
}
