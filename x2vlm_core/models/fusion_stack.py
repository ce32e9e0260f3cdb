"""What X-VLM and X²-VLM compute alike on top of their image encoders: one BERT stack whose upper
layers fuse text with the image, and the ITC/ITM/box/MLM heads over it.

A model mixes this in and provides ``vision_encoder`` (with ``forward_regions``), ``text_encoder``
(``BertForMaskedLM``), ``vision_proj``, ``text_proj``, ``itm_head`` and ``bbox_head``; the module
names, and so the official checkpoint keys, stay the model's own.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from x2vlm_core.models.bert import BertForMaskedLM


class FusionStackHeads:
    vision_encoder: Any
    text_encoder: BertForMaskedLM
    vision_proj: nn.Linear
    text_proj: nn.Linear
    itm_head: nn.Sequential
    bbox_head: nn.Sequential

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
