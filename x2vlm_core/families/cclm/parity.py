"""Checking the original CCLM (``swin`` set) against the official CCLM code on its parity fixture.

The fixture (``cclm_tiny.th`` + ``reference_io.pt`` in ``cclm_official_tiny/``, made by running
the official ``CrossViewLM``: a four-stage Swin and a 6 + 6 layer stack of XLM-R shape, random
weights) records 48 outputs of both streams; ``reference_outputs`` recomputes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from x2vlm_core.families import create_model
from x2vlm_core.families.cclm.checkpoint import adapt_cclm_state
from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.families.cclm.reference_outputs import group_of, reference_outputs
from x2vlm_core.release.model_folder import load_state_file

CHECKPOINT = "cclm_tiny.th"
TEXT_FOLDER = "assets/tiny-xlm-roberta-large"
# The official builder keeps text_num_hidden_layers (12) of XLM-R's layers; fusion from 12 // 2.
OFFICIAL_LAYERS = 12


def fixture_shape(fixture_dir: str | Path) -> dict:
    """Our config for the fixture, read from its assets as the official builder reads them."""
    folder = Path(fixture_dir)
    xlmr = json.loads((folder / TEXT_FOLDER / "config.json").read_text())
    swin = json.loads((folder / "assets/config_swin_tiny_224.json").read_text())
    text = {k: v for k, v in xlmr.items() if k not in ("architectures", "model_type", "output_past")}
    text["num_hidden_layers"] = OFFICIAL_LAYERS // 2
    return dict(
        image_res=224,
        embed_dim=16,
        max_tokens=12,
        tokenizer=str(folder / TEXT_FOLDER),
        swin={
            "encoder": "swin",
            "embed_dim": swin["embed_dim"],
            "depths": swin["depths"],
            "stage_heads": swin["num_heads"],
            "window_size": swin["window_size"],
        },
        text_encoder={"arch": "xlm-roberta", "config": text},
        cross={
            "num_layers": OFFICIAL_LAYERS - OFFICIAL_LAYERS // 2,
            "num_heads": xlmr["num_attention_heads"],
            "intermediate_size": xlmr["intermediate_size"],
        },
    )


def official_tiny_model(fixture_dir: str | Path) -> CCLM:
    """The fixture's checkpoint in our model, every tensor accounted for (strict)."""
    model = create_model("cclm_base_swin", **fixture_shape(fixture_dir))
    state = adapt_cclm_state(model, load_state_file(Path(fixture_dir) / CHECKPOINT))
    model.load_state_dict(state, strict=True)
    return model.eval()


def max_abs_diffs(
    fixture_dir: str | Path, model: CCLM | None = None, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Max abs difference of each reference output, ours (fp32 on ``device``) vs the official."""
    ref = torch.load(Path(fixture_dir) / "reference_io.pt", weights_only=True)
    model = (model or official_tiny_model(fixture_dir)).to(device)
    inputs = {k: v.to(device) for k, v in ref["inputs"].items()}
    with torch.no_grad():
        ours = reference_outputs(model, inputs)
    missing = sorted(set(ref["outputs"]) - set(ours))
    if missing:
        raise KeyError(f"reference outputs this check does not compute: {missing}")
    return {name: (ours[name].float().cpu() - ref["outputs"][name].float()).abs().max().item() for name in ours}


def max_diff_per_group(diffs: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, diff in diffs.items():
        out[group_of(name)] = max(out.get(group_of(name), 0.0), diff)
    return out
