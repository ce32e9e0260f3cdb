"""Checking this implementation against the official one on an official checkpoint and its outputs.

A parity fixture is an official checkpoint and ``reference_io.pt`` (``{'inputs', 'outputs'}``,
made by running the official code on those inputs). ``check`` imports the checkpoint as
``x2vlm import-official`` does (the model's shape comes from the checkpoint's own config),
recomputes every reference output with the family's ``reference_outputs`` on any device, and
gives the max abs difference of each, so a new machine or a changed kernel is checked in one call.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from x2vlm_core.release.import_official import import_checkpoint, imported_format

REFERENCE_FILE = "reference_io.pt"


def official_model(checkpoint: str | Path, image_res: int | None = None) -> nn.Module:
    """The official checkpoint in our model, in eval mode: at its own size, or resized to ``image_res``."""
    return import_checkpoint(checkpoint, image_res).model


def check(checkpoint: str | Path, reference_file: str | Path, device: str | torch.device = "cpu") -> dict[str, float]:
    """Max abs difference of each reference output, ours (fp32 on ``device``) vs the official."""
    imported = import_checkpoint(checkpoint)
    ref = torch.load(reference_file, map_location="cpu", weights_only=True)
    model = imported.model.to(device)
    inputs = {k: v.to(device) for k, v in ref["inputs"].items()}
    with torch.no_grad():
        ours = imported_format(imported.family).reference_outputs(model, inputs)
    missing = sorted(set(ref["outputs"]) - set(ours))
    if missing:
        raise KeyError(f"reference outputs this check does not compute: {missing}")
    return {name: (ours[name].float().cpu() - ref["outputs"][name].float()).abs().max().item() for name in ours}


def max_abs_diffs(fixture_dir: str | Path, device: str | torch.device = "cpu") -> dict[str, float]:
    """``check`` on a fixture folder (its checkpoint and ``reference_io.pt``)."""
    fixture_dir = Path(fixture_dir)
    return check(fixture_checkpoint(fixture_dir), fixture_dir / REFERENCE_FILE, device)


def fixture_checkpoint(fixture_dir: str | Path) -> Path:
    """A fixture folder's one checkpoint file (beside ``reference_io.pt``)."""
    found = sorted(
        p
        for p in Path(fixture_dir).iterdir()
        if p.suffix in (".th", ".ckpt", ".pt", ".pth") and p.name != REFERENCE_FILE
    )
    if len(found) != 1:
        raise FileNotFoundError(
            f"{fixture_dir} holds {len(found)} checkpoint files besides {REFERENCE_FILE}; "
            "pass the checkpoint to check() instead"
        )
    return found[0]
