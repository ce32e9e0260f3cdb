"""Our XVLM computes the same function as the official code on its own checkpoint.

The fixture (../shared/fixtures/x2vlm_official_tiny) was produced by the official
implementation; every one of its 25 reference outputs must match within 1e-4 in fp32.
The model's shape comes from the checkpoint's own config, as ``import-official`` maps it.
"""

import torch

from x2vlm_core.parity import check, official_model

ATOL = 1e-4


def test_all_25_reference_outputs_match_the_official_code(official_tiny):
    diffs = check(official_tiny / "x2vlm_tiny.th", official_tiny / "reference_io.pt")
    assert len(diffs) == 25
    too_far = {name: diff for name, diff in diffs.items() if not diff <= ATOL}
    assert not too_far, f"outputs off by more than {ATOL}: {too_far}"


def test_official_checkpoint_loads_at_another_image_resolution(official_tiny):
    """48 px (3x3 patches) → 80 px (5x5): bias tables are resized, not refused."""
    small = official_model(official_tiny / "x2vlm_tiny.th")
    large = official_model(official_tiny / "x2vlm_tiny.th", image_res=80)
    table_48 = small.vision_encoder.blocks[0].attn.relative_position_bias_table
    table_80 = large.vision_encoder.blocks[0].attn.relative_position_bias_table
    assert table_48.shape == (5 * 5 + 3, 12) and table_80.shape == (9 * 9 + 3, 12)
    torch.testing.assert_close(table_80[-3:], table_48[-3:])  # the CLS rows are kept
    grid_48, grid_80 = table_48[:-3].reshape(5, 5, 12), table_80[:-3].reshape(9, 9, 12)
    for (i, j), (k, m) in {(2, 2): (4, 4), (0, 0): (0, 0), (4, 0): (8, 0), (0, 4): (0, 8)}.items():
        torch.testing.assert_close(grid_80[k, m], grid_48[i, j])  # offset 0 and the far corners
    with torch.no_grad():
        embeds, _ = large.get_vision_embeds(torch.randn(2, 3, 80, 80))
    assert embeds.shape == (2, 26, 768) and torch.isfinite(embeds).all()
    torch.testing.assert_close(
        large.text_encoder.bert.embeddings.word_embeddings.weight,
        small.text_encoder.bert.embeddings.word_embeddings.weight,
    )
