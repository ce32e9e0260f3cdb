"""The X-VLM family computes the official X-VLM function on the official checkpoint layout.

The fixture (../shared/fixtures/xvlm_official_tiny) was made by running the official X-VLM code
(a four-stage Swin, a 2 + 2 layer BERT, random weights); every one of its 25 reference outputs
must match within 1e-4 in fp32, with the checkpoint loaded strictly.
"""

import torch

from x2vlm_core.families.xvlm.checkpoint import to_official
from x2vlm_core.families.xvlm.parity import CHECKPOINT, max_abs_diffs, official_tiny_model
from x2vlm_core.release.model_folder import load_state_file

ATOL = 1e-4


def test_all_25_reference_outputs_match_the_official_code(official_xvlm_tiny):
    diffs = max_abs_diffs(official_xvlm_tiny)
    assert len(diffs) == 25
    too_far = {name: diff for name, diff in diffs.items() if not diff <= ATOL}
    assert not too_far, f"outputs off by more than {ATOL}: {too_far}"


def test_the_official_layout_round_trips_with_every_key_and_buffer(official_xvlm_tiny):
    official = load_state_file(official_xvlm_tiny / CHECKPOINT)
    back = to_official(official_tiny_model(official_xvlm_tiny))
    assert len(official) == 200 and set(back) == set(official)
    for key, value in official.items():
        # Parameters come back as loaded; the buffers the model derives equal the saved ones.
        torch.testing.assert_close(back[key].reshape(value.shape), value, rtol=0, atol=0, msg=key)
    assert back["vision_encoder.layers.2.blocks.1.attn_mask"].shape == (4, 49, 49)
    assert back["vision_encoder.layers.0.downsample.reduction.weight"].shape == (64, 128)
