"""What the shared objectives and tasks use of a model, beyond ``VisionLanguageModel``.

``FusionModel`` is the X²-VLM encoder interface (X²-VLM, CCLM): image and text encoders whose
outputs a cross encoder fuses, with the ITC/ITM/MLM/box heads on top. The task models add their
heads to it (``models.task_heads``). These are for type checking only: the models do not
inherit from them.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from x2vlm_core.families.spec import VisionLanguageModel
from x2vlm_core.models.answer_decoder import AnswerDecoder


class TaskModel(VisionLanguageModel, Protocol):
    """Any family's model as a task evaluates it (every model is an ``nn.Module``)."""

    def eval(self) -> nn.Module: ...


class FusionModel(TaskModel, Protocol):
    """An X²-VLM-style model; ``None`` masks mean nothing is masked."""

    @property
    def temp(self) -> torch.Tensor: ...

    def get_text_embeds(self, text_ids: torch.Tensor, text_atts: torch.Tensor | None) -> torch.Tensor: ...

    def get_region_embeds(
        self, image: torch.Tensor, image_atts: torch.Tensor, idx_to_group_img: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def get_cross_embeds(
        self,
        image_embeds: torch.Tensor,
        image_atts: torch.Tensor | None,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
    ) -> torch.Tensor: ...

    def get_image_feat(self, image_embeds: torch.Tensor) -> torch.Tensor: ...

    def get_text_feat(self, text_embeds: torch.Tensor) -> torch.Tensor: ...

    def itm_logits(
        self,
        image_embeds: torch.Tensor,
        image_atts: torch.Tensor | None,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
    ) -> torch.Tensor: ...

    def predict_bbox(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_atts: torch.Tensor | None
    ) -> torch.Tensor: ...

    def mlm_logits(
        self,
        text_ids_masked: torch.Tensor,
        text_atts: torch.Tensor | None,
        masked_pos: torch.Tensor,
        image_embeds: torch.Tensor | None,
        image_atts: torch.Tensor | None,
    ) -> torch.Tensor: ...


class ClassifierModel(FusionModel, Protocol):
    """A fusion model with the task classifier ``cls_head`` attached (``TaskHeads.cls_inputs``)."""

    @property
    def cls_head(self) -> nn.Module: ...


class AnswerDecoderModel(FusionModel, Protocol):
    """A fusion model with the VQA answer decoder ``text_decoder`` attached (``TaskHeads.decoder_layers``)."""

    @property
    def text_decoder(self) -> AnswerDecoder: ...

    def init_answer_decoder(self, decoder: AnswerDecoder) -> None: ...
