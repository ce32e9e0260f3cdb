"""X²-VLM: BEiT-2 vision encoder + BERT text/fusion stack + ITC/ITM/box heads.

The module tree and parameter names follow the official ``XVLMBase`` so that its
checkpoints load with ``load_state_dict`` as they are.

Text and image masks (``text_atts``, ``image_atts``) are ``[B, L]`` 1/0 keep-masks; ``None``
means nothing is masked (no padding, the whole image). Passing ``None`` when the inputs say so
keeps SDPA's flash kernel eligible, and costs no read-back from the device.
"""

from __future__ import annotations

import torch
from torch import nn

from x2vlm_core.models.answer_decoder import AnswerDecoder
from x2vlm_core.models.beit2 import BEiT2
from x2vlm_core.models.bert import BertForMaskedLM
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.fusion_stack import FusionStackHeads
from x2vlm_core.models.heads import TEMP_RANGE, build_mlp


class XVLM(FusionStackHeads, nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_encoder = BEiT2(config.vision, config.image_res)
        self.text_encoder = BertForMaskedLM(config.text, encoder_width=config.vision.width)
        width = config.text.hidden_size
        self.vision_proj = nn.Linear(config.vision.width, config.embed_dim)
        self.text_proj = nn.Linear(width, config.embed_dim)
        # Shape [1], not the official (): DeepSpeed cannot broadcast 0-dim parameters.
        self.temp = nn.Parameter(torch.full((1,), config.temp))
        self.itm_head = build_mlp(width, 2)
        self.bbox_head = build_mlp(width, 4)
        if config.frame_len:
            self.absolute_frame_pos_embed = nn.Parameter(torch.zeros(1, config.frame_len, 1, config.vision.width))
            nn.init.trunc_normal_(self.absolute_frame_pos_embed, std=0.02)
        for head in (self.vision_proj, self.text_proj, self.itm_head, self.bbox_head):
            for module in head.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)

    # Heads that do not exist in the pre-trained encoders; they get the larger learning rate.
    new_head_prefixes: tuple[str, ...] = (
        "vision_proj",
        "text_proj",
        "itm_head",
        "bbox_head",
        "temp",
        "absolute_frame_pos_embed",
    )

    def forward(self, objective, *batches):
        """Run a training objective ``objective(model, *batches) -> {name: loss}``.

        Routing objectives through ``forward`` lets the DeepSpeed engine wrap every
        task the same way (ZeRO-3 gathers parameters inside module calls).
        """
        return objective(self, *batches)

    def clamp_temp(self) -> None:
        with torch.no_grad():
            self.temp.clamp_(*TEMP_RANGE)

    def init_answer_decoder(self, decoder: AnswerDecoder) -> None:
        """The VQA answer decoder starts from the fusion layers (official)."""
        decoder.init_from_fusion_layers(self.text_encoder)

    def get_vision_embeds(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B,3,H,W]`` or videos ``[B,F,3,H,W]`` → embeds ``[B,1+P,D]`` and an all-ones mask."""
        if image.dim() == 5:
            embeds = self._encode_video(image)
        else:
            embeds = self.vision_encoder(image)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)

    def _encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        b, f = frames.shape[:2]
        if not self.config.frame_len:
            raise ValueError("this model was built without frame_len; it cannot encode video")
        embeds = self.vision_encoder(frames.flatten(0, 1)).unflatten(0, (b, f))
        embeds = embeds + self.absolute_frame_pos_embed[:, :f]
        return embeds.mean(dim=1)  # average each patch over time
