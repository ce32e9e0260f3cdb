"""A video checkpoint's frame position embedding meets a model with another ``frame_len``.

The official loader (``XVLMBase.load_pretrained``) copies the checkpoint's first
``min(F_checkpoint, F_model)`` frames into the model's embedding and leaves the rest at
the model's initialisation; ours does the same.
"""

import pytest
import torch

from x2vlm_core.errors import CheckpointError
from x2vlm_core.families import create_model
from x2vlm_core.release.model_folder import check_shapes, fit_image_resolution, init_from, save_model_dir


@pytest.mark.parametrize("frames", [2, 6])
def test_video_frame_positions_follow_the_official_loader_when_frame_len_changes(tmp_path, frames):
    """The checkpoint fills the first min(F_ckpt, F_model) frame positions; the rest keep their init."""
    torch.manual_seed(0)
    source = create_model("x2vlm_tiny", frame_len=4)
    save_model_dir(source, tmp_path / "video")
    target = create_model("x2vlm_tiny", frame_len=frames)
    before = target.absolute_frame_pos_embed.detach().clone()
    assert init_from(target, tmp_path / "video") == []
    loaded, saved = target.absolute_frame_pos_embed.detach(), source.absolute_frame_pos_embed.detach()
    kept = min(frames, 4)
    torch.testing.assert_close(loaded[:, :kept], saved[:, :kept], rtol=0, atol=0)
    torch.testing.assert_close(loaded[:, kept:], before[:, kept:], rtol=0, atol=0)
    assert not torch.equal(loaded, before)
    with torch.no_grad():
        embeds, _ = target.get_vision_embeds(torch.randn(1, frames, 3, 64, 64))
    assert torch.isfinite(embeds).all()


def test_frame_positions_of_another_width_are_refused():
    target = create_model("x2vlm_tiny", frame_len=3)  # width 64
    state = {"absolute_frame_pos_embed": torch.zeros(1, 2, 1, 32)}
    assert fit_image_resolution(target, state)["absolute_frame_pos_embed"].shape == (1, 2, 1, 32)
    with pytest.raises(CheckpointError, match="absolute_frame_pos_embed"):
        check_shapes(target, fit_image_resolution(target, state), "ckpt")
