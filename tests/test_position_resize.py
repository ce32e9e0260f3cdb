"""Relative position bias tables are resized exactly as the official X²-VLM loader resizes them.

``tests/fixtures/official_rel_pos_resize.pt`` holds outputs of the official function itself
(see the README beside it): random tables resized between several patch grids, and the
official-layout tiny checkpoint loaded into the official vision encoder at 80 px.
"""

from pathlib import Path

import pytest
import torch

from x2vlm_core.models.position_resize import (
    cubic_spline_weights,
    resize_relative_position_bias_table,
    source_positions,
)
from x2vlm_core.parity import official_model

FIXTURE = Path(__file__).parent / "fixtures" / "official_rel_pos_resize.pt"
REFERENCE = torch.load(FIXTURE, weights_only=True)
CASES = REFERENCE["cases"]
TABLE_ATOL = 1e-5


def test_the_fixture_covers_enlarging_a_small_grid_shrinking_and_uneven_windows():
    grids = {(c["source_grid"], c["target_grid"]) for c in CASES.values()}
    assert {(14, 24), (3, 5), (24, 14)} <= grids  # 224→384, 48→80, 384→224 px at patch 16
    assert any(t % s and s % t for s, t in grids)  # one grid ratio that is no whole number either way


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_matches_the_official_resize(name):
    case = CASES[name]
    ours = resize_relative_position_bias_table(case["table"], case["target_grid"])
    assert ours.shape == case["official"].shape and ours.dtype == case["official"].dtype
    diff = (ours - case["official"]).abs().max().item()
    assert diff <= TABLE_ATOL, f"{name}: max abs diff {diff}"


def test_near_offsets_and_cls_rows_keep_their_values_when_enlarging():
    table = CASES["enlarge_224_to_384"]["table"]
    resized = resize_relative_position_bias_table(table, 24)
    old, new = table[:-3].reshape(27, 27, -1), resized[:-3].reshape(47, 47, -1)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):  # offsets 0 and ±1 sit at the same place on both grids
            torch.testing.assert_close(new[23 + di, 23 + dj], old[13 + di, 13 + dj], rtol=0, atol=1e-6)
    torch.testing.assert_close(resized[-3:], table[-3:], rtol=0, atol=0)


def test_source_offsets_stretch_geometrically_to_the_target_reach():
    positions = source_positions(13, 23)  # 224 → 384 px
    assert positions[13 - 1 : 13 + 2] == [-1.0, 0.0, 1.0]
    steps = [b - a for a, b in zip(positions[13:], positions[14:])]
    ratios = {round(b / a, 9) for a, b in zip(steps, steps[1:])}
    assert len(ratios) == 1 and 1.01 < ratios.pop() < 1.5
    assert abs(positions[-1] - 23) < 1e-3
    # Shrinking squeezes no further than the lower bound of the ratio: the outermost offsets overshoot.
    assert source_positions(23, 13)[-1] > 23


def test_the_spline_reproduces_cubics_and_holds_its_edge_values():
    nodes = torch.tensor(source_positions(4, 7), dtype=torch.float64)
    inside = torch.linspace(float(nodes[0]), float(nodes[-1]), 11, dtype=torch.float64)
    cubic = lambda t: 0.3 * t**3 - t**2 + 2 * t - 5  # noqa: E731
    torch.testing.assert_close(cubic_spline_weights(nodes, inside) @ cubic(nodes), cubic(inside))
    beyond = torch.tensor([nodes[-1] + 3.0, nodes[0] - 2.0], dtype=torch.float64)
    torch.testing.assert_close(cubic_spline_weights(nodes, beyond) @ cubic(nodes), cubic(nodes[[-1, 0]]))


def test_a_two_by_two_grid_is_refused_as_the_official_spline_refuses_it():
    with pytest.raises(ValueError, match="at least 3x3"):
        resize_relative_position_bias_table(torch.zeros(3 * 3 + 3, 2), 4)


def test_official_checkpoint_at_a_new_size_gives_the_official_tables_and_image_features(official_tiny):
    """The official-layout tiny checkpoint (48 px) loaded at 80 px, against the official loader's result."""
    expected = REFERENCE["tiny_checkpoint_at_80"]
    model = official_model(official_tiny / "x2vlm_tiny.th", image_res=80)
    state = model.state_dict()
    assert expected["tables"]
    for key, table in expected["tables"].items():
        diff = (state[key] - table).abs().max().item()
        assert diff <= TABLE_ATOL, f"{key}: max abs diff {diff}"
    with torch.no_grad():
        embeds, _ = model.get_vision_embeds(expected["image"])
    torch.testing.assert_close(embeds, expected["image_embeds"], rtol=0, atol=1e-4)
