"""The BERT text + fusion stack of X²-VLM, with the official state-dict names.

One stack of ``num_layers`` BERT layers: layers below ``fusion_start_at`` encode text
alone; layers from there on add cross-attention to the image. transformers' BERT does
not have this structure: its cross-attention projects keys and values from the text
width (X²-VLM's take the 768/1024-wide vision features), it exists only in decoder
mode, where self-attention becomes causal (X²-VLM's fusion is bidirectional), and it is
on in every layer or none. So the layers are written here, with the
``text_encoder.bert.*`` / ``text_encoder.cls.*`` names of official checkpoints
(``position_ids`` included, which transformers no longer saves).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from x2vlm_core.models.config import TextConfig

# The official code adds (1 - mask) * -10000 to the attention scores. A boolean mask (-inf)
# would select the same SDPA kernels and differ only where a row masks every key, so the
# official additive form is kept.
MASK_VALUE = -10000.0


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, L]`` 1/0 keep-mask → ``[B, 1, 1, L]`` additive bias for SDPA.

    ``None`` means "nothing to mask" (no padding, the whole image) and stays ``None``: SDPA's
    flash kernel takes no mask at all, and the caller knows this from its inputs' shapes
    without reading the mask back from the device.
    """
    if mask is None:
        return None
    return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_VALUE


class BertEmbeddings(nn.Module):
    position_ids: torch.Tensor  # a buffer

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings)[None], persistent=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(self.position_ids[:, :length])
            + self.token_type_embeddings.weight[0]
        )
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: TextConfig, kv_width: int) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)
        self.dropout_p = cfg.attention_dropout
        # Set by ``attention_maps.keep_attention_probs``: forwards then append their attention
        # probabilities ``[B, heads, Lq, Lk]`` here (SDPA never materialises them).
        self.kept_probs: list[torch.Tensor] | None = None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if context is None else context
        q, k, v = self._heads(self.query(x)), self._heads(self.key(kv)), self._heads(self.value(kv))
        dropout_p = self.dropout_p if self.training else 0.0
        if self.kept_probs is not None:
            out = self._attend_keeping_probs(q, k, v, mask, dropout_p, self.kept_probs)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out.transpose(1, 2).flatten(2)

    @staticmethod
    def _attend_keeping_probs(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        dropout_p: float,
        kept: list[torch.Tensor],
    ) -> torch.Tensor:
        """The attention SDPA computes, written out so its probabilities (before dropout) can be kept."""
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        kept.append(probs)
        return F.dropout(probs, dropout_p, training=dropout_p > 0) @ v


class ResidualOutput(nn.Module):
    """dense → dropout → LayerNorm(x + residual): BERT's attention output and FFN output."""

    def __init__(self, cfg: TextConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: TextConfig, kv_width: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg, kv_width)
        self.output = ResidualOutput(cfg, cfg.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.self(x, mask, context), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, cfg: TextConfig, encoder_width: int, with_cross_attention: bool) -> None:
        super().__init__()
        self.attention = BertAttention(cfg, cfg.hidden_size)
        if with_cross_attention:
            self.crossattention = BertAttention(cfg, encoder_width)
        self.intermediate = BertIntermediate(cfg)
        self.output = ResidualOutput(cfg, cfg.intermediate_size)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        image: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``mask``/``image_mask``: additive ``[B, 1, 1, L]`` biases, or ``None`` for no masking."""
        x = self.attention(x, mask)
        if image is not None and hasattr(self, "crossattention"):
            x = self.crossattention(x, image_mask, image)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: TextConfig, encoder_width: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            BertLayer(cfg, encoder_width, with_cross_attention=i >= cfg.fusion_start_at) for i in range(cfg.num_layers)
        )


class BertModel(nn.Module):
    """Runs a slice of the layer stack: text layers, fusion layers, or all of them.

    ``text_atts`` / ``image_atts`` are ``[B, L]`` 1/0 keep-masks; ``None`` means no padding
    (every text token, the whole image), which keeps SDPA's flash kernel eligible.
    """

    def __init__(self, cfg: TextConfig, encoder_width: int) -> None:
        super().__init__()
        self.fusion_start_at = cfg.fusion_start_at
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg, encoder_width)

    def run_layers(
        self,
        x: torch.Tensor,
        text_atts: torch.Tensor | None,
        start: int,
        stop: int,
        image: torch.Tensor | None = None,
        image_atts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mask = additive_mask(text_atts, x.dtype)
        image_mask = additive_mask(image_atts, x.dtype) if image is not None else None
        for layer in self.encoder.layer[start:stop]:
            x = layer(x, mask, image, image_mask)
        return x

    def encode_text(self, text_ids: torch.Tensor, text_atts: torch.Tensor | None) -> torch.Tensor:
        return self.run_layers(self.embeddings(text_ids), text_atts, 0, self.fusion_start_at)

    def fuse(
        self,
        text_embeds: torch.Tensor,
        text_atts: torch.Tensor | None,
        image_embeds: torch.Tensor,
        image_atts: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.run_layers(
            text_embeds, text_atts, self.fusion_start_at, len(self.encoder.layer), image_embeds, image_atts
        )

    def forward(
        self,
        text_ids: torch.Tensor,
        text_atts: torch.Tensor | None,
        image_embeds: torch.Tensor | None = None,
        image_atts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """All layers; with no image the fusion layers skip their cross-attention (text-only MLM)."""
        return self.run_layers(
            self.embeddings(text_ids), text_atts, 0, len(self.encoder.layer), image_embeds, image_atts
        )


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(cfg)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.bias = self.decoder.bias  # both names exist in official checkpoints; one tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(cfg)


class BertForMaskedLM(nn.Module):
    """``bert`` (the stack) + ``cls`` (the MLM head, decoder tied to the word embeddings)."""

    def __init__(self, cfg: TextConfig, encoder_width: int) -> None:
        super().__init__()
        self.bert = BertModel(cfg, encoder_width)
        self.cls = BertOnlyMLMHead(cfg)
        self._init_weights()
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def mlm_logits(
        self,
        text_ids_masked: torch.Tensor,
        text_atts: torch.Tensor | None,
        masked_pos: torch.Tensor,
        image_embeds: torch.Tensor | None = None,
        image_atts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, M, V]`` at ``masked_pos`` only: the vocabulary projection is the costly part."""
        hidden = self.bert(text_ids_masked, text_atts, image_embeds, image_atts)
        picked = torch.gather(hidden, 1, masked_pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return self.cls.predictions(picked)
