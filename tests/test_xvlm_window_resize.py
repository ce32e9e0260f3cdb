"""Swin relative position bias tables are resized exactly as the official X-VLM loader resizes them.

``tests/fixtures/official_swin_window_resize.pt`` holds outputs of the official function
(``interpolate_relative_pos_embed``, see the README beside it): random tables resized between
windows, and the official parity checkpoint's tables resized to window 12 (224 → 384 px).
"""

from pathlib import Path

import pytest
import torch

from x2vlm_core.families.xvlm.parity import official_tiny_model
from x2vlm_core.families.xvlm.window_resize import resize_window_bias_table, window_of_table

FIXTURE = Path(__file__).parent / "fixtures" / "official_swin_window_resize.pt"
REFERENCE = torch.load(FIXTURE, weights_only=True)
ATOL = 1e-5


@pytest.mark.parametrize("name", sorted(REFERENCE["cases"]))
def test_table_matches_the_official_resize(name):
    case = REFERENCE["cases"][name]
    ours = resize_window_bias_table(case["table"], case["target_window"])
    assert ours.shape == case["official"].shape and ours.dtype == case["official"].dtype
    assert (ours - case["official"]).abs().max().item() <= ATOL


def test_the_cases_enlarge_and_shrink_the_base_window():
    windows = {(c["source_window"], c["target_window"]) for c in REFERENCE["cases"].values()}
    assert {(7, 12), (12, 7)} <= windows


def test_near_offsets_keep_their_values_when_enlarging():
    case = REFERENCE["cases"]["window_7_to_12"]
    old, new = case["table"].reshape(13, 13, -1), resize_window_bias_table(case["table"], 12).reshape(23, 23, -1)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            torch.testing.assert_close(new[11 + dy, 11 + dx], old[6 + dy, 6 + dx])


def test_the_official_checkpoint_loads_at_384_px_with_window_12(official_xvlm_tiny):
    """224 px window 7 → 384 px window 12, as the official fine-tuning configs do."""
    model = official_tiny_model(
        official_xvlm_tiny,
        image_res=384,
        vision={
            "encoder": "swin",
            "embed_dim": 32,
            "depths": [1, 1, 2, 1],
            "stage_heads": [2, 4, 8, 16],
            "window_size": 12,
        },
    )
    state = model.state_dict()
    for key, official in REFERENCE["fixture_tables_window_12"].items():
        assert window_of_table(state[key].shape[0]) == 12
        assert (state[key] - official).abs().max().item() <= ATOL, key
    with torch.no_grad():
        embeds, _ = model.get_vision_embeds(torch.randn(1, 3, 384, 384))
    assert embeds.shape == (1, 1 + 12 * 12, 256) and torch.isfinite(embeds).all()


def test_a_window_too_small_to_spline_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        resize_window_bias_table(torch.zeros(9, 1), 7)
