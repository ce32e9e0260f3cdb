"""X-VLM: a Swin (or DeiT / CLIP-ViT) image encoder + one BERT stack whose top layers
cross-attend to the image, with ITC, ITM, MLM and box heads (the official ``XVLMBase`` in
pre-training form).

Besides the image encoder's (see ``swin.py``, ``vit.py``) the names are the official ones:
``text_encoder.bert.*``, ``text_encoder.cls.*`` (decoder tied to the word embeddings),
``vision_proj``, ``text_proj``, ``temp``, ``itm_head``, ``bbox_head``. The interface is the
one every family's model offers, so the shared objectives and tasks run on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.xvlm.config import XVLMConfig
from x2vlm_core.models.answer_decoder import AnswerDecoder
from x2vlm_core.models.bert import BertForMaskedLM
from x2vlm_core.models.fusion_stack import FusionStackHeads
from x2vlm_core.models.heads import TEMP_RANGE, build_mlp

if TYPE_CHECKING:  # imported where built: timm loads only for the encoder a config names
    from x2vlm_core.families.xvlm.swin import SwinEncoder
    from x2vlm_core.families.xvlm.vit import ViTEncoder


def build_vision_encoder(config: XVLMConfig) -> SwinEncoder | ViTEncoder:
    if config.vision.encoder == "swin":
        from x2vlm_core.families.xvlm.swin import SwinEncoder

        return SwinEncoder(config.vision, config.image_res)
    from x2vlm_core.families.xvlm.vit import ViTEncoder

    return ViTEncoder(config.vision, config.image_res)


class XVLMModel(FusionStackHeads, nn.Module):
    def __init__(self, config: XVLMConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_encoder = build_vision_encoder(config)
        self.text_encoder = BertForMaskedLM(config.text, encoder_width=config.vision.out_width)
        width = config.text.hidden_size
        self.vision_proj = nn.Linear(config.vision.out_width, config.embed_dim)
        self.text_proj = nn.Linear(width, config.embed_dim)
        # Shape [1], not the official (): DeepSpeed cannot broadcast 0-dim parameters.
        self.temp = nn.Parameter(torch.full((1,), config.temp))
        self.itm_head = build_mlp(width, 2)
        self.bbox_head = build_mlp(width, 4)
        for head in (self.vision_proj, self.text_proj, self.itm_head, self.bbox_head):
            for module in head.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)

    # Heads the pre-trained encoders do not have; they get the larger learning rate.
    new_head_prefixes: tuple[str, ...] = ("vision_proj", "text_proj", "itm_head", "bbox_head", "temp")

    def forward(self, objective, *batches):
        """Run a training objective ``objective(model, *batches) -> {name: loss}`` (as every family's model)."""
        return objective(self, *batches)

    def clamp_temp(self) -> None:
        with torch.no_grad():
            self.temp.clamp_(*TEMP_RANGE)

    def init_answer_decoder(self, decoder: AnswerDecoder) -> None:
        """The VQA answer decoder starts from the fusion layers (official)."""
        decoder.init_from_fusion_layers(self.text_encoder)

    def get_vision_embeds(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B,3,H,W]`` → embeds ``[B,1+P,D]`` and an all-ones mask."""
        if image.dim() != 4:
            raise ConfigError(f"X-VLM encodes images [B, 3, H, W]; got a tensor of shape {tuple(image.shape)}")
        embeds = self.vision_encoder(image)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
