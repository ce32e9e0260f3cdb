"""Evaluation preprocessing is the official one: bicubic square resize, then CLIP mean/std."""

import numpy as np
import torch
from PIL import Image

from x2vlm_core.data.transforms import image_to_tensor


def test_a_flat_colour_maps_to_clip_normalised_values():
    image = Image.new("RGB", (40, 30), (255, 0, 51))
    tensor = image_to_tensor(image, 16)
    expected = torch.tensor(
        [(1.0 - 0.48145466) / 0.26862954, (0.0 - 0.4578275) / 0.26130258, (0.2 - 0.40821073) / 0.27577711]
    )
    assert tensor.shape == (3, 16, 16)
    torch.testing.assert_close(tensor, expected.view(3, 1, 1).expand(3, 16, 16), atol=1e-6, rtol=0)


def test_resize_is_pil_bicubic_to_a_square():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    tensor = image_to_tensor(image, 20)
    # Undo the normalisation: the pixels are exactly PIL's bicubic resize to 20x20.
    mean, std = torch.tensor([0.48145466, 0.4578275, 0.40821073]), torch.tensor([0.26862954, 0.26130258, 0.27577711])
    pixels = (tensor * std.view(3, 1, 1) + mean.view(3, 1, 1)) * 255
    resized = np.asarray(image.resize((20, 20), Image.BICUBIC), dtype=np.float32)
    torch.testing.assert_close(pixels, torch.from_numpy(resized).permute(2, 0, 1), atol=1e-3, rtol=0)
