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
import torch.nn.functional as F
from torch import nn

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.xvlm.config import XVLMConfig
from x2vlm_core.models.answer_decoder import AnswerDecoder
from x2vlm_core.models.bert import BertForMaskedLM
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


class XVLMModel(nn.Module):
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

    def get_region_embeds(
        self, image: torch.Tensor, image_atts: torch.Tensor, idx_to_group_img: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per region text: region-pooled embeds and the full-image embeds of its image."""
        region, full = self.vision_encoder.forward_regions(image, idx_to_group_img, image_atts)
        return region, full[idx_to_group_img]

    def get_text_embeds(self, text_ids: torch.Tensor, text_atts: torch.Tensor | None) -> torch.Tensor:
        return self.text_encoder.bert.encode_text(text_ids, text_atts)

    def get_cross_embeds(
        self,
        image_embeds: torch.Tensor,
        image_atts: torch.Tensor | None,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.text_encoder.bert.fuse(text_embeds, text_atts, image_embeds, image_atts)

    def get_image_feat(self, image_embeds: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.vision_proj(image_embeds[:, 0]), dim=-1)

    def get_text_feat(self, text_embeds: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(text_embeds[:, 0]), dim=-1)

    def itm_logits(
        self,
        image_embeds: torch.Tensor,
        image_atts: torch.Tensor | None,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.itm_head(self.get_cross_embeds(image_embeds, image_atts, text_embeds, text_atts)[:, 0])

    def predict_bbox(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_atts: torch.Tensor | None
    ) -> torch.Tensor:
        """(cx, cy, w, h) in [0, 1], from text fused with the whole image (no image mask)."""
        return self.bbox_head(self.get_cross_embeds(image_embeds, None, text_embeds, text_atts)[:, 0]).sigmoid()

    def mlm_logits(
        self,
        text_ids_masked: torch.Tensor,
        text_atts: torch.Tensor | None,
        masked_pos: torch.Tensor,
        image_embeds: torch.Tensor | None,
        image_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.text_encoder.mlm_logits(text_ids_masked, text_atts, masked_pos, image_embeds, image_atts)
