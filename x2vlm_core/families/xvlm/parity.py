"""Checking the X-VLM family against the official X-VLM code on its parity fixture.

The fixture (``xvlm_tiny.th`` + ``reference_io.pt`` in ``xvlm_official_tiny/``, made by running
the official X-VLM code: a four-stage Swin and a 2 + 2 layer BERT, random weights) holds the
same 25 named outputs as X²-VLM's, so the same ``reference_outputs`` recomputes them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from x2vlm_core.families import create_model
from x2vlm_core.families.x2vlm.reference_outputs import reference_outputs
from x2vlm_core.families.xvlm.checkpoint import adapt_checkpoint
from x2vlm_core.families.xvlm.model import XVLMModel
from x2vlm_core.release.model_folder import load_state_file

CHECKPOINT = "xvlm_tiny.th"
# The fixture's shape (assets/config_swin_toy_224.json, assets/config_bert_toy.json).
FIXTURE_SHAPE = dict(
    image_res=224,
    embed_dim=16,
    vision={"encoder": "swin", "embed_dim": 32, "depths": [1, 1, 2, 1], "stage_heads": [2, 4, 8, 16], "window_size": 7},
    text={
        "vocab_size": 64,
        "hidden_size": 32,
        "num_layers": 4,
        "fusion_start_at": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
)


def official_tiny_model(fixture_dir: str | Path, **overrides) -> XVLMModel:
    """The fixture's checkpoint in our model, every tensor accounted for (strict)."""
    model = create_model("xvlm_base", **{**FIXTURE_SHAPE, **overrides})
    state = adapt_checkpoint(model, load_state_file(Path(fixture_dir) / CHECKPOINT))
    model.load_state_dict(state, strict=True)
    return model.eval()


def max_abs_diffs(fixture_dir: str | Path, device: str | torch.device = "cpu") -> dict[str, float]:
    """Max abs difference of each reference output, ours (fp32 on ``device``) vs the official."""
    ref = torch.load(Path(fixture_dir) / "reference_io.pt", weights_only=True)
    model = official_tiny_model(fixture_dir).to(device)
    inputs = {k: v.to(device) for k, v in ref["inputs"].items()}
    with torch.no_grad():
        ours = reference_outputs(model, inputs)
    missing = sorted(set(ref["outputs"]) - set(ours))
    if missing:
        raise KeyError(f"reference outputs this check does not compute: {missing}")
    return {name: (ours[name].float().cpu() - ref["outputs"][name].float()).abs().max().item() for name in ours}
