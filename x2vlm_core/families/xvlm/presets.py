"""X-VLM presets: the released base model (Swin-B) at 224 and 384 px, the other image encoders
of the official code, and a tiny one for tests and `make run`."""

from __future__ import annotations

from typing import Any

# Official configs/config_bert.json: BERT-base, fusion_layer 6 (6 text + 6 fusion layers).
_BERT_BASE = {"hidden_size": 768, "num_layers": 12, "fusion_start_at": 6, "num_heads": 12, "intermediate_size": 3072}
# Official configs/config_swinB_224.json (window 7) and config_swinB_384.json (window 12).
_SWIN_B = {"encoder": "swin", "embed_dim": 128, "depths": [2, 2, 18, 2], "stage_heads": [4, 8, 16, 32]}
_SWIN_T = {"encoder": "swin", "embed_dim": 96, "depths": [2, 2, 6, 2], "stage_heads": [3, 6, 12, 24]}

PRESETS: dict[str, dict[str, Any]] = {
    # Swin-B 224 + BERT-base 6/6: 215,637,241 parameters, as the official code builds from
    # Pretrain_XVLM_base_4m.yaml (the released 4M and 16M checkpoints).
    "xvlm_base": {"vision": {**_SWIN_B, "window_size": 7}, "text": _BERT_BASE},
    # The fine-tuning size (official VQA, retrieval, grounding configs): 384 px, window 12.
    "xvlm_base_384": {"image_res": 384, "vision": {**_SWIN_B, "window_size": 12}, "text": _BERT_BASE},
    "xvlm_swin_t": {"vision": {**_SWIN_T, "window_size": 7}, "text": _BERT_BASE},
    # The official code's other image encoders, with patch 16 and local attention in the top 4 blocks.
    "xvlm_deit_base": {
        "vision": {"encoder": "deit", "width": 768, "depth": 12, "num_heads": 12, "patch_size": 16},
        "text": _BERT_BASE,
    },
    "xvlm_clip_base": {
        "vision": {"encoder": "clip_vit", "width": 768, "depth": 12, "num_heads": 12, "patch_size": 16},
        "text": _BERT_BASE,
    },
    # Two Swin stages (64 px → 16x16 → 8x8 tokens, windows of 4 that shift) and the text shape of
    # x2vlm_tiny. Trained from scratch, it needs the Swin's absolute position embedding to learn boxes.
    "xvlm_tiny": {
        "image_res": 64,
        "embed_dim": 32,
        "max_tokens": 24,
        "vision": {
            "encoder": "swin",
            "embed_dim": 32,
            "depths": [2, 2],
            "stage_heads": [2, 4],
            "window_size": 4,
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
