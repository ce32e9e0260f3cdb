"""VLMo: one multiway transformer used as a dual encoder and as a fusion encoder.

- Dual encoder (ITC, retrieval): an image runs through shared attention + V-FFN, a text
  through shared attention + L-FFN. In pre-training each also runs its top blocks a second
  time through the VL-FFN, for the second pair of contrastive heads (``itc_vl_*``).
- Fusion encoder (ITM, MLM, VQA, NLVR2): text tokens then image tokens in one sequence;
  below ``vlffn_start`` each part goes through its own expert, above it the VL-FFN.
  The pooled text CLS feeds the heads.

State-dict names follow the official ``VLMo`` module (``transformer.*``,
``relative_position_bias_table``, ``text_embeddings.*``, ``itc_*_proj``, ``mlm_score``...),
so its checkpoints load through ``vlmo_checkpoint.adapt_official_state``. The logit scales
are ``[1]`` here (DeepSpeed cannot broadcast 0-dim parameters); the loader reshapes them.

The X²-VLM encoder interface (``get_vision_embeds`` / ``get_text_embeds`` / ``get_image_feat``
/ ``get_text_feat`` / ``itm_logits`` / ``mlm_logits``) is implemented too, with two differences:
``get_text_feat`` also takes ``text_atts``, and the temperature is ``temperature`` (no ``temp``).
The "embeds" passed between those calls are the input tokens: the fusion encoder starts from
tokens, not from the separate encodings, so the towers run inside ``get_*_feat``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.families.vlmo.config import VLMoConfig
from x2vlm_core.families.vlmo.multiway import MultiwayTransformer
from x2vlm_core.families.vlmo.positions import (
    image_position_index,
    position_bias,
    table_rows,
    text_image_index,
    text_position_index,
)
from x2vlm_core.models.heads import build_mlp

TEXT_LAYER_NORM_EPS = 1e-12
IMAGE_TOKEN_TYPE = 1
SECOND_IMAGE_TOKEN_TYPE = 2  # NLVR2's second image


class TextEmbeddings(nn.Module):
    """BERT-style embeddings (official ``text_embeddings``).

    With relative positions the position table stays in the state dict (official layout)
    but is not added: positions come from the shared bias table instead.
    """

    position_ids: torch.Tensor  # a buffer

    def __init__(self, cfg: VLMoConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_tokens, cfg.width)
        self.token_type_embeddings = nn.Embedding(2, cfg.width)
        self.LayerNorm = nn.LayerNorm(cfg.width, eps=TEXT_LAYER_NORM_EPS)
        self.dropout = nn.Dropout(cfg.drop_path_rate)  # the official model sets it from drop_path_rate
        self.register_buffer("position_ids", torch.arange(cfg.max_tokens)[None], persistent=True)
        self.absolute = not cfg.relative_position

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(text_ids) + self.token_type_embeddings.weight[0]
        if self.absolute:
            x = x + self.position_embeddings(self.position_ids[:, : text_ids.shape[1]])
        return self.dropout(self.LayerNorm(x))


class Pooler(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class LinearHead(nn.Module):
    """One linear layer under the name ``fc`` (official ITM and ITC heads)."""

    def __init__(self, width: int, out: int, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(width, out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class MLMTransform(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.LayerNorm = nn.LayerNorm(width, eps=TEXT_LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class MLMHead(nn.Module):
    """transform → decoder (its own weight: the official head is not tied) + bias."""

    def __init__(self, width: int, vocab_size: int) -> None:
        super().__init__()
        self.transform = MLMTransform(width)
        self.decoder = nn.Linear(width, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x)) + self.bias


# Pre-training and task heads; the README's model sizes count everything else.
HEAD_PREFIXES = ("pooler.", "mlm_score.", "itm_score.", "itc_", "logit_", "vqa_classifier.", "nlvr2_classifier.")


def backbone_parameter_count(model: nn.Module) -> int:
    """Parameters of the shared transformer with its image and text embeddings and position tables."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(HEAD_PREFIXES))


def _init_bert_style(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


class VLMo(nn.Module):
    # Task heads get the larger learning rate (the official lr_mult heads).
    new_head_prefixes: tuple[str, ...] = ("vqa_classifier", "nlvr2_classifier")
    # 2-D, yet not decayed: the official optimizer exempts every name holding "bias".
    no_weight_decay_keys = ("relative_position_bias_table",)
    # Buffers, with relative positions only.
    relative_position_index: torch.Tensor
    text_relative_position_index: torch.Tensor

    def __init__(self, config: VLMoConfig) -> None:
        super().__init__()
        self.config = config
        width, grid = config.width, config.num_patches_side
        self.transformer = MultiwayTransformer(config)
        if config.relative_position:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(table_rows(grid, config.text_rel_pos_len), config.num_heads * config.depth)
            )
            # Derived from the config, so not saved (nor are they in official checkpoints).
            self.register_buffer("relative_position_index", image_position_index(grid), persistent=False)
            self.register_buffer(
                "text_relative_position_index",
                text_position_index(config.max_tokens, grid, config.text_rel_pos_len),
                persistent=False,
            )
        self.text_embeddings = TextEmbeddings(config)
        self.token_type_embeddings = nn.Embedding(2, width)
        self.pooler = Pooler(width)
        self.mlm_score = MLMHead(width, config.vocab_size)
        self.itm_score = LinearHead(width, 2)
        self.itc_text_proj = LinearHead(width, width, bias=False)
        self.itc_image_proj = LinearHead(width, width, bias=False)
        self.itc_vl_text_proj = LinearHead(width, width, bias=False)
        self.itc_vl_image_proj = LinearHead(width, width, bias=False)
        self.logit_scale = nn.Parameter(torch.full((1,), math.log(1 / config.temp)))
        self.logit_vl_scale = nn.Parameter(torch.full((1,), math.log(1 / config.temp)))
        for module in (
            self.text_embeddings,
            self.token_type_embeddings,
            self.pooler,
            self.mlm_score,
            self.itm_score,
            self.itc_text_proj,
            self.itc_image_proj,
            self.itc_vl_text_proj,
            self.itc_vl_image_proj,
        ):
            _init_bert_style(module)
        for head in config.task_heads:
            self._build_task_head(head)

    # ---- task heads -------------------------------------------------------------------------
    def add_task_head(self, name: str) -> None:
        """Build the VQA or NLVR2 head (recorded in the config, so a saved model folder has it)."""
        if name not in self.config.task_heads:
            self._build_task_head(name)
            self.config.task_heads.append(name)

    def _build_task_head(self, name: str) -> None:
        width = self.config.width
        if name == "vqa":
            self.vqa_classifier = build_mlp(width, self.config.vqa_answers)
            _init_bert_style(self.vqa_classifier)
        elif name == "nlvr2":
            # The official NLVR2 head keeps the hidden width at 2w (build_mlp would double it again).
            self.nlvr2_classifier = nn.Sequential(
                nn.Linear(2 * width, 2 * width), nn.LayerNorm(2 * width), nn.GELU(), nn.Linear(2 * width, 2)
            )
            _init_bert_style(self.nlvr2_classifier)
            # A third token type for the second image, started from the image type (official).
            old = self.token_type_embeddings.weight
            grown = nn.Embedding(3, width, device=old.device, dtype=old.dtype)
            with torch.no_grad():
                grown.weight[:2] = old[:2]
                grown.weight[2] = old[IMAGE_TOKEN_TYPE]
            self.token_type_embeddings = grown
        else:
            raise ConfigError(f"unknown task head {name!r}; available: vqa, nlvr2")

    # ---- tokens -----------------------------------------------------------------------------
    def embed_image(self, image: torch.Tensor, token_type: int = IMAGE_TOKEN_TYPE) -> torch.Tensor:
        """``[B, 3, R, R]`` → ``[B, 1 + P, D]`` input tokens (CLS, patches, + image token type)."""
        res = self.config.image_res
        if image.dim() != 4 or tuple(image.shape[1:]) != (3, res, res):
            raise DataError(
                f"VLMo {self.config.name} takes images [B, 3, {res}, {res}], got {tuple(image.shape)}; "
                "resize to model.image_res or build the model with another image_res"
            )
        return self.transformer.visual_embed(image) + self.token_type_embeddings.weight[token_type]

    def embed_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        if text_ids.shape[1] > self.config.max_tokens:
            raise DataError(
                f"texts of {text_ids.shape[1]} tokens exceed max_tokens={self.config.max_tokens}; "
                "tokenize with that limit or raise model.max_tokens"
            )
        return self.text_embeddings(text_ids) + self.token_type_embeddings.weight[0]

    # ---- encoders ---------------------------------------------------------------------------
    def _bias(self, index: torch.Tensor | None) -> tuple[torch.Tensor, ...] | None:
        if index is None:
            return None
        return position_bias(self.relative_position_bias_table, index, self.config.depth)

    def _text_index(self, length: int) -> torch.Tensor | None:
        if not self.config.relative_position:
            return None
        return self.text_relative_position_index[:length, :length]

    def _image_index(self) -> torch.Tensor | None:
        return self.relative_position_index if self.config.relative_position else None

    def _encode_one_modality(
        self, x: torch.Tensor, keep: torch.Tensor, mode: str, index: torch.Tensor | None, with_vl: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Top of the modality expert path and, with ``with_vl``, of the VL-FFN path from ``vlffn_start``."""
        bias, start, run = self._bias(index), self.config.vlffn_start, self.transformer.run
        below = run(x, keep, mode, bias, 0, start)
        top = self.transformer.norm(run(below, keep, mode, bias, start))
        vl = self.transformer.norm(run(below, keep, "vl", bias, start)) if with_vl else None
        return top, vl

    def encode_image(
        self, image_tokens: torch.Tensor, with_vl: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dual-encoder image side: ``(V-FFN output, VL-FFN output or None)``, each ``[B, 1+P, D]``."""
        keep = torch.ones(image_tokens.shape[:2], dtype=torch.long, device=image_tokens.device)
        return self._encode_one_modality(image_tokens, keep, "image", self._image_index(), with_vl)

    def encode_text(
        self, text_tokens: torch.Tensor, text_atts: torch.Tensor, with_vl: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dual-encoder text side: ``(L-FFN output, VL-FFN output or None)``, each ``[B, T, D]``."""
        return self._encode_one_modality(
            text_tokens, text_atts, "text", self._text_index(text_tokens.shape[1]), with_vl
        )

    def fuse(
        self, image_tokens: torch.Tensor, image_atts: torch.Tensor, text_tokens: torch.Tensor, text_atts: torch.Tensor
    ) -> torch.Tensor:
        """Fusion encoder over ``[text; image]``: ``[B, T + 1 + P, D]`` after the final norm."""
        length = text_tokens.shape[1]
        index = None
        text_index = self._text_index(length)  # None without relative positions
        if text_index is not None:
            index = text_image_index(text_index, self.relative_position_index, self.config.num_patches_side)
        x = torch.cat([text_tokens, image_tokens], dim=1)
        keep = torch.cat([text_atts, image_atts.to(text_atts.dtype)], dim=1)
        hidden = self.transformer.run(x, keep, "vl", self._bias(index), text_len=length)
        return self.transformer.norm(hidden)

    # ---- contrastive features -----------------------------------------------------------------
    def image_features(
        self, image_tokens: torch.Tensor, with_vl: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """L2-normalised ITC features: V-FFN CLS through ``itc_image_proj``, VL-FFN CLS through ``itc_vl_image_proj``."""
        top, vl = self.encode_image(image_tokens, with_vl)
        feat = F.normalize(self.itc_image_proj(top[:, 0]), dim=-1)
        return feat, (F.normalize(self.itc_vl_image_proj(vl[:, 0]), dim=-1) if vl is not None else None)

    def text_features(
        self, text_tokens: torch.Tensor, text_atts: torch.Tensor, with_vl: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        top, vl = self.encode_text(text_tokens, text_atts, with_vl)
        feat = F.normalize(self.itc_text_proj(top[:, 0]), dim=-1)
        return feat, (F.normalize(self.itc_vl_text_proj(vl[:, 0]), dim=-1) if vl is not None else None)

    # Temperatures of the two contrastive head pairs, ``1 / exp(logit scale)``. Not named ``temp``:
    # that is X²-VLM's clamped parameter; the official VLMo leaves its logit scales unclamped.
    @property
    def temperature(self) -> torch.Tensor:
        return torch.exp(-self.logit_scale)

    @property
    def vl_temperature(self) -> torch.Tensor:
        return torch.exp(-self.logit_vl_scale)

    # ---- fusion heads -------------------------------------------------------------------------
    def itm_logits(
        self, image_tokens: torch.Tensor, image_atts: torch.Tensor, text_tokens: torch.Tensor, text_atts: torch.Tensor
    ) -> torch.Tensor:
        return self.itm_score(self.pooler(self.fuse(image_tokens, image_atts, text_tokens, text_atts)))

    def mlm_logits(
        self,
        text_ids_masked: torch.Tensor,
        text_atts: torch.Tensor,
        masked_pos: torch.Tensor,
        image_tokens: torch.Tensor | None = None,
        image_atts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, M, V]`` at ``masked_pos``: fused with the image, or text only (L-FFN in every block)."""
        text_tokens = self.embed_text(text_ids_masked)
        if image_tokens is None:
            keep = text_atts
            hidden = self.transformer.norm(
                self.transformer.run(text_tokens, keep, "text", self._bias(self._text_index(text_tokens.shape[1])))
            )
        else:
            if image_atts is None:
                raise ValueError("mlm_logits with image_tokens needs their image_atts")
            hidden = self.fuse(image_tokens, image_atts, text_tokens, text_atts)[:, : text_tokens.shape[1]]
        picked = torch.gather(hidden, 1, masked_pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return self.mlm_score(picked)

    def vqa_logits(
        self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_atts: torch.Tensor
    ) -> torch.Tensor:
        self._require_head("vqa")
        image_atts = torch.ones(image_tokens.shape[:2], dtype=text_atts.dtype, device=text_atts.device)
        return self.vqa_classifier(self.pooler(self.fuse(image_tokens, image_atts, text_tokens, text_atts)))

    def nlvr2_logits(
        self, image0: torch.Tensor, image1: torch.Tensor, text_ids: torch.Tensor, text_atts: torch.Tensor
    ) -> torch.Tensor:
        """Each image fused with the text (the second with token type 2); the two CLS concatenated."""
        self._require_head("nlvr2")
        text_tokens = self.embed_text(text_ids)
        pooled = []
        for image, token_type in ((image0, IMAGE_TOKEN_TYPE), (image1, SECOND_IMAGE_TOKEN_TYPE)):
            tokens = self.embed_image(image, token_type)
            atts = torch.ones(tokens.shape[:2], dtype=text_atts.dtype, device=text_atts.device)
            pooled.append(self.pooler(self.fuse(tokens, atts, text_tokens, text_atts)))
        return self.nlvr2_classifier(torch.cat(pooled, dim=-1))

    def _require_head(self, name: str) -> None:
        if name not in self.config.task_heads:
            raise ConfigError(f"this VLMo has no {name} head; call add_task_head({name!r}) before fine-tuning")

    # ---- the X²-VLM encoder interface ---------------------------------------------------------
    def forward(self, objective, *batches):
        """Run ``objective(model, *batches) -> {name: loss}`` (DeepSpeed wraps every task the same way)."""
        return objective(self, *batches)

    def get_vision_embeds(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embed_image(image)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)

    def get_text_embeds(self, text_ids: torch.Tensor, text_atts: torch.Tensor) -> torch.Tensor:
        return self.embed_text(text_ids)

    def get_image_feat(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return self.image_features(image_tokens)[0]

    def get_text_feat(self, text_tokens: torch.Tensor, text_atts: torch.Tensor) -> torch.Tensor:
        """Unlike X²-VLM's, this needs the mask: the text tower runs here, on the tokens."""
        return self.text_features(text_tokens, text_atts)[0]
