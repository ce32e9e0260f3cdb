"""CCLM: BEiT-2 vision + a transformers text encoder + a separate BERT cross encoder + ITC/ITM/box/MLM heads.

The module tree and parameter names follow the official ``XVLMPlusBase`` (X2-VLM) so that its
checkpoints load as they are: ``vision_encoder.*``, ``text_encoder.{embeddings,encoder}.*``
(a transformers model without pooler), ``cross_encoder.encoder.layer.{i}.*`` (every layer
cross-attends, keys and values projected from the vision width), ``mlm_head.predictions.*``
(its own decoder, not tied to the text encoder's embeddings), ``vision_proj``, ``text_proj``,
``temp``, ``itm_head``, ``bbox_head``.

It offers the X²-VLM encoder interface (``get_vision_embeds``, ``get_text_embeds``,
``get_cross_embeds``, ``get_image_feat``/``get_text_feat``, ``itm_logits``, ``predict_bbox``,
``mlm_logits``, ``get_region_embeds``, ``temp``), so the X²-VLM objectives and task code run on it.
The cross encoder's context may also be another text's embeddings (CCLM's parallel-text
objectives); that needs the text width to equal the vision width, as in the official sizes.

With ``config.swin`` set it is the original CCLM (the official ``CrossViewLM``), named as X-VLM
is: the X-VLM family's Swin as ``vision_encoder`` and one ``BertForMaskedLM`` as
``text_encoder`` (``text_encoder.bert.*``, ``text_encoder.cls.*`` with the decoder tied), whose
lower layers encode text and upper layers fuse; there is no ``cross_encoder`` / ``mlm_head``.
The interface is the same, so objectives, tasks and checkpoints treat both alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.cclm.config import CCLMConfig
from x2vlm_core.models.answer_decoder import AnswerDecoder
from x2vlm_core.models.beit2 import BEiT2
from x2vlm_core.models.bert import BertEncoder, BertForMaskedLM, BertOnlyMLMHead, additive_mask
from x2vlm_core.models.config import TextConfig
from x2vlm_core.models.fusion_stack import FusionStackHeads
from x2vlm_core.models.heads import TEMP_RANGE, build_mlp

if TYPE_CHECKING:
    from transformers import BertModel, RobertaModel, XLMRobertaModel


def _init_bert_style(module: nn.Module) -> None:
    """Normal(0.02) weights and zero biases, as BERT initialises its layers."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, std=0.02)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            nn.init.zeros_(sub.bias)


def build_text_encoder(config: CCLMConfig) -> BertModel | RobertaModel | XLMRobertaModel:
    """The transformers model of ``text_encoder.arch`` (no pooler), freshly initialised."""
    from transformers import BertModel, RobertaModel, XLMRobertaModel

    classes = {"xlm-roberta": XLMRobertaModel, "roberta": RobertaModel, "bert": BertModel}
    return classes[config.text_encoder.arch](config.text_encoder.transformers_config(), add_pooling_layer=False)


class CrossEncoder(nn.Module):
    """BERT layers without embeddings; each attends to the text, then to a context (image patches or a text)."""

    def __init__(self, cfg: TextConfig, context_width: int) -> None:
        super().__init__()
        self.context_width = context_width
        self.encoder = BertEncoder(cfg, context_width)  # fusion_start_at 0: every layer cross-attends

    def forward(
        self,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
        context: torch.Tensor | None,
        context_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        """``context=None`` skips the cross-attention (text-only MLM)."""
        mask = additive_mask(text_atts, text_embeds.dtype)
        context_mask = additive_mask(context_atts, text_embeds.dtype) if context is not None else None
        x = text_embeds
        for layer in self.encoder.layer:
            x = layer(x, mask, context, context_mask)
        return x


class CCLM(FusionStackHeads, nn.Module):
    # Two layouts share this class, so these are typed by what both offer: BEiT-2 or the original's
    # Swin; a transformers text encoder or the original's one BERT stack with its MLM decoder.
    # The shared heads (features, ITM, box, regions) come from FusionStackHeads, over this class's
    # own get_text_embeds / get_cross_embeds.
    vision_encoder: Any
    text_encoder: Any

    def __init__(self, config: CCLMConfig) -> None:
        super().__init__()
        self.config = config
        self.one_stack = config.one_stack
        if self.one_stack:
            self._build_original()
        else:
            self._build_x2vlm_based()
        width = config.text_width
        self.vision_proj = nn.Linear(config.vision_width, config.embed_dim)
        self.text_proj = nn.Linear(width, config.embed_dim)
        # Shape [1], not the official (): DeepSpeed cannot broadcast 0-dim parameters.
        self.temp = nn.Parameter(torch.full((1,), config.temp))
        self.itm_head = build_mlp(width, 2)
        self.bbox_head = build_mlp(width, 4)
        new_parts = () if self.one_stack else (self.cross_encoder, self.mlm_head)
        for part in (*new_parts, self.vision_proj, self.text_proj, self.itm_head, self.bbox_head):
            _init_bert_style(part)

    def _build_x2vlm_based(self) -> None:
        config = self.config
        cross_cfg = config.text
        self.vision_encoder = BEiT2(config.vision, config.image_res)
        self.text_encoder = build_text_encoder(config)
        self.cross_encoder = CrossEncoder(cross_cfg, config.vision.width)
        # The official head reads the text encoder's config: its LayerNorm eps (XLM-R: 1e-5) and vocabulary.
        head_eps = config.text_encoder.transformers_config().layer_norm_eps
        self.mlm_head = BertOnlyMLMHead(
            TextConfig(vocab_size=cross_cfg.vocab_size, hidden_size=cross_cfg.hidden_size, layer_norm_eps=head_eps)
        )
        self.new_head_prefixes = (*self.new_head_prefixes, "mlm_head")

    def _build_original(self) -> None:
        from x2vlm_core.families.xvlm.swin import SwinEncoder

        assert self.config.swin is not None
        self.vision_encoder = SwinEncoder(self.config.swin, self.config.image_res)
        self.text_encoder = BertForMaskedLM(self.config.text, encoder_width=self.config.vision_width)

    # Modules that start untrained when the model comes from X²-VLM + XLM-R (and ``mlm_head`` in that
    # layout); they get the larger learning rate.
    new_head_prefixes: tuple[str, ...] = ("vision_proj", "text_proj", "itm_head", "bbox_head", "temp")

    def forward(self, objective, *batches):
        """Run a training objective ``objective(model, *batches) -> {name: loss}`` (see ``XVLM.forward``)."""
        return objective(self, *batches)

    def clamp_temp(self) -> None:
        with torch.no_grad():
            self.temp.clamp_(*TEMP_RANGE)

    @torch.no_grad()
    def init_answer_decoder(self, decoder: AnswerDecoder) -> None:
        """Initialise a VQA answer decoder from this model, as X²-VLM's is from its fusion layers.

        Decoder layer ``j`` comes from cross-encoder layer ``j`` (or every second one, the odd ones,
        for half as many layers), its cross-attention keys and values excepted when they read the
        vision width; the word, position and type embeddings and their LayerNorm from the text
        encoder (RoBERTa-style positions start after the padding id); the MLM head's transform and
        bias from ``mlm_head``. The decoder's output layer stays tied to its word embeddings.
        The original CCLM's decoder starts from its fusion layers, as X-VLM's does.
        """
        if self.one_stack:
            decoder.init_from_fusion_layers(self.text_encoder)
            return
        cross, layers = self.cross_encoder.encoder.layer, decoder.bert.encoder.layer
        if len(cross) not in (len(layers), 2 * len(layers)):
            raise ConfigError(
                f"an answer decoder of {len(layers)} layers cannot be initialised from "
                f"{len(cross)} cross-encoder layers; use {len(cross)} or {len(cross) // 2} decoder layers"
            )
        stride = len(cross) // len(layers)
        for j, layer in enumerate(layers):
            source, own = cross[j * stride + stride - 1].state_dict(), layer.state_dict()
            layer.load_state_dict({k: v for k, v in source.items() if own[k].shape == v.shape}, strict=False)
        text, target = self.text_encoder.embeddings, decoder.bert.embeddings
        target.word_embeddings.weight.copy_(text.word_embeddings.weight)
        first = self.config.text_pad_id + 1 if self.config.text_encoder.arch != "bert" else 0
        rows = min(target.position_embeddings.num_embeddings, text.position_embeddings.num_embeddings - first)
        target.position_embeddings.weight[:rows].copy_(text.position_embeddings.weight[first : first + rows])
        target.token_type_embeddings.weight[0].copy_(text.token_type_embeddings.weight[0])
        target.LayerNorm.load_state_dict(text.LayerNorm.state_dict())
        head, own_head = self.mlm_head.predictions, decoder.cls.predictions
        own_head.transform.load_state_dict(head.transform.state_dict())
        own_head.decoder.bias.copy_(head.decoder.bias)

    # ---- the X²-VLM encoder interface ----

    def get_vision_embeds(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.dim() != 4:
            raise ConfigError(f"CCLM encodes images [B, 3, H, W]; got a tensor of shape {tuple(image.shape)}")
        embeds = self.vision_encoder(image)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)

    def get_text_embeds(self, text_ids: torch.Tensor, text_atts: torch.Tensor | None) -> torch.Tensor:
        if self.one_stack:
            return self.text_encoder.bert.encode_text(text_ids, text_atts)
        return self.text_encoder(input_ids=text_ids, attention_mask=text_atts).last_hidden_state

    def get_cross_embeds(
        self,
        image_embeds: torch.Tensor | None,
        image_atts: torch.Tensor | None,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        """Text fused with a context: image patches, or (parallel text) the other text's embeddings."""
        if image_embeds is not None and image_embeds.shape[-1] != self.config.vision_width:
            raise ConfigError(
                f"the cross encoder attends to {self.config.vision_width}-wide inputs (the vision width), "
                f"got {image_embeds.shape[-1]}-wide ones; text-text fusion needs a text encoder as wide as the vision encoder"
            )
        if self.one_stack:
            return self.text_encoder.bert.fuse(text_embeds, text_atts, image_embeds, image_atts)
        return self.cross_encoder(text_embeds, text_atts, image_embeds, image_atts)

    def mlm_logits(
        self,
        text_ids_masked: torch.Tensor,
        text_atts: torch.Tensor | None,
        masked_pos: torch.Tensor,
        image_embeds: torch.Tensor | None,
        image_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        """Logits ``[B, M, V]`` at ``masked_pos``: masked text → text encoder → cross encoder (with the context)."""
        if self.one_stack:  # no context: the fusion layers skip their cross-attention (TLM)
            return self.text_encoder.mlm_logits(text_ids_masked, text_atts, masked_pos, image_embeds, image_atts)
        text_embeds = self.get_text_embeds(text_ids_masked, text_atts)
        hidden = self.get_cross_embeds(image_embeds, image_atts, text_embeds, text_atts)
        picked = torch.gather(hidden, 1, masked_pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return self.mlm_head.predictions(picked)
