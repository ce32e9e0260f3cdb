"""CCLM configuration: X²-VLM's vision encoder, a swappable transformers text encoder and a separate cross encoder.

CCLM (cross-view language modeling) is a third model family beside X²-VLM and VLMo, told apart
in a saved ``config.yaml`` by ``family: cclm``. Its layout is the official ``XVLMPlusBase``:
``vision_encoder`` (BEiT-2), ``text_encoder`` (any BERT / RoBERTa / XLM-R model of transformers,
no pooler), ``cross_encoder`` (BERT layers that all cross-attend to the image) and the heads.

With ``swin`` set, the model is the original CCLM (the official ``CrossViewLM``, X-VLM-shaped):
the X-VLM family's Swin image encoder and ONE BERT-style stack (``text_encoder.bert.*``, MLM
decoder tied to the word embeddings) of the text encoder's layers followed by ``cross.num_layers``
fusion layers of the same shape; ``vision`` is then unused. The official builder runs XLM-R
weights in BERT code, so positions count from 0 (no RoBERTa padding offset).

The text encoder is given as ``{arch, config}`` (a transformers ``model_type`` and its config
fields over that class's defaults), or as the path of a transformers model folder, whose
``config.json`` is read once here, so that a saved ``config.yaml`` needs no folder to load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from x2vlm_core.config_io import from_dict
from x2vlm_core.errors import ConfigError
from x2vlm_core.families.xvlm.config import XVLMVisionConfig
from x2vlm_core.models.config import TextConfig, VisionConfig

FAMILY = "cclm"
TEXT_ARCHS = ("xlm-roberta", "roberta", "bert")
# Bookkeeping fields of a transformers config.json that say nothing about the network's shape.
_NOT_SHAPE = {
    "architectures",
    "transformers_version",
    "_name_or_path",
    "model_type",
    "torch_dtype",
    "dtype",
    "id2label",
    "label2id",
    "auto_map",
    "output_past",
}


@dataclass
class TextEncoderConfig:
    arch: str = "xlm-roberta"
    # That architecture's transformers config fields; the ones left out take transformers' defaults.
    config: dict[str, Any] = field(default_factory=dict)
    # A transformers checkpoint (folder or file) whose weights initialise the text encoder when the
    # model is initialised from an X²-VLM checkpoint (which has no text encoder to give); empty: random.
    weights: str = ""

    def __post_init__(self) -> None:
        if self.arch not in TEXT_ARCHS:
            raise ConfigError(f"text_encoder.arch {self.arch!r} is not supported; use one of {', '.join(TEXT_ARCHS)}")

    def transformers_config(self):
        """The transformers config object this text encoder is built from."""
        from transformers import AutoConfig

        try:
            return AutoConfig.for_model(self.arch, **self.config)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"text_encoder.config does not fit a {self.arch} config: {exc}".splitlines()[0]) from None


@dataclass
class CrossEncoderConfig:
    """BERT layers with cross-attention (the official cross encoder is bert-base/large's top 6)."""

    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 3072
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1


@dataclass
class CCLMConfig:
    name: str = "cclm_x2vlm_base"
    family: str = FAMILY
    image_res: int = 224
    embed_dim: int = 256
    temp: float = 0.07
    # A folder with XLM-R's sentencepiece.bpe.model (or a transformers tokenizer.json); presets leave it
    # empty because no XLM-R vocabulary ships offline: set it, or give text_encoder as a model folder.
    tokenizer: str = ""
    # Image-caption text length (the official multilingual config's max_tokens).
    max_tokens: int = 30
    vision: VisionConfig = field(default_factory=VisionConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    cross: CrossEncoderConfig = field(default_factory=CrossEncoderConfig)
    # The original CCLM's Swin image encoder (see the module docstring); None: BEiT-2 (``vision``).
    swin: XVLMVisionConfig | None = None

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise ConfigError(f"family {self.family!r} is not {FAMILY!r}; a CCLM config must say family: {FAMILY}")
        if self.image_res % self.patch_stride:
            raise ConfigError(
                f"image_res {self.image_res} must be a multiple of {self.patch_stride} "
                "(the image encoder's output stride)"
            )
        if self.swin is None and self.vision.width % self.vision.num_heads:
            raise ConfigError(f"vision width {self.vision.width} is not divisible by its {self.vision.num_heads} heads")
        if self.text_width % self.cross.num_heads:
            raise ConfigError(f"cross width {self.text_width} is not divisible by its {self.cross.num_heads} heads")
        if self.one_stack:
            self._check_one_stack()
        positions = self.text_encoder.transformers_config().max_position_embeddings
        # RoBERTa-style encoders number positions from pad_token_id + 1 (XLM-R: 514 rows for 512 tokens);
        # the original CCLM runs XLM-R in BERT code, from 0.
        roberta_offset = self.text_encoder.arch != "bert" and not self.one_stack
        usable = positions - (self.text_pad_id + 1 if roberta_offset else 0)
        if self.max_tokens > usable:
            raise ConfigError(
                f"max_tokens {self.max_tokens} exceeds the {usable} positions of the text encoder; "
                "lower max_tokens or raise text_encoder.config.max_position_embeddings"
            )

    def _check_one_stack(self) -> None:
        # One stack: the fusion layers are the text layers' shape, so cross.* must say the same.
        text = self.text_encoder.transformers_config()
        if (self.cross.num_heads, self.cross.intermediate_size) != (text.num_attention_heads, text.intermediate_size):
            raise ConfigError(
                f"with swin set, the fusion layers continue the text encoder's stack: cross.num_heads "
                f"{self.cross.num_heads} / cross.intermediate_size {self.cross.intermediate_size} must "
                f"equal the text encoder's {text.num_attention_heads} / {text.intermediate_size}"
            )
        if self.cross.num_layers < 1 or text.num_hidden_layers < 1:
            raise ConfigError(
                "with swin set, the stack needs at least one text layer and one fusion layer "
                "(text_encoder num_hidden_layers, cross.num_layers)"
            )

    @property
    def one_stack(self) -> bool:
        """The original CCLM: Swin + one BERT-style stack of text then fusion layers."""
        return self.swin is not None

    @property
    def patch_stride(self) -> int:
        return self.swin.stride if self.swin is not None else self.vision.patch_size

    @property
    def vision_width(self) -> int:
        """The width of the image tokens the fusion layers attend to (the official ``vision_width``)."""
        return self.swin.out_width if self.swin is not None else self.vision.width

    @property
    def num_patches_side(self) -> int:
        return self.image_res // self.patch_stride

    @property
    def text_width(self) -> int:
        return self.text_encoder.transformers_config().hidden_size

    @property
    def vocab_size(self) -> int:
        return self.text_encoder.transformers_config().vocab_size

    @property
    def text_pad_id(self) -> int:
        return self.text_encoder.transformers_config().pad_token_id

    @property
    def text(self) -> TextConfig:
        """The cross encoder as a BERT stack (fusion from layer 0), with the text encoder's vocabulary;
        with ``swin``, the whole stack (text layers, then fusion layers).

        It is what the BERT layers are built from, and the shape task heads size themselves by.
        """
        if self.one_stack:
            text = self.text_encoder.transformers_config()
            return TextConfig(
                vocab_size=text.vocab_size,
                hidden_size=text.hidden_size,
                num_layers=text.num_hidden_layers + self.cross.num_layers,
                fusion_start_at=text.num_hidden_layers,
                num_heads=text.num_attention_heads,
                intermediate_size=text.intermediate_size,
                max_position_embeddings=text.max_position_embeddings,
                type_vocab_size=text.type_vocab_size,
                pad_token_id=text.pad_token_id,
                layer_norm_eps=text.layer_norm_eps,
                hidden_dropout=text.hidden_dropout_prob,
                attention_dropout=text.attention_probs_dropout_prob,
            )
        return TextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.text_width,
            num_layers=self.cross.num_layers,
            fusion_start_at=0,
            num_heads=self.cross.num_heads,
            intermediate_size=self.cross.intermediate_size,
            pad_token_id=self.text_pad_id,
            layer_norm_eps=self.cross.layer_norm_eps,
            hidden_dropout=self.cross.hidden_dropout,
            attention_dropout=self.cross.attention_dropout,
        )


def text_encoder_from_folder(folder: str | Path) -> dict[str, Any]:
    """``{arch, config, weights}`` from a transformers model folder (its ``config.json``; its weights if any)."""
    path = Path(folder)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"text_encoder {folder}: no config.json there; give a transformers model folder "
            "(e.g. a download of xlm-roberta-base) or {arch: xlm-roberta, config: {...}}"
        )
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file} is not valid JSON ({exc}); re-download the model folder") from None
    arch = data.get("model_type")
    has_weights = any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    return {
        "arch": arch,
        "config": {k: v for k, v in data.items() if k not in _NOT_SHAPE},
        "weights": str(path) if has_weights else "",
    }


def cclm_config(data: dict[str, Any], where: str) -> CCLMConfig:
    """A CCLM config from a preset (merged with overrides) or a saved ``config.yaml``."""
    data = dict(data)
    text_encoder = data.get("text_encoder")
    if isinstance(text_encoder, str):
        data["text_encoder"] = text_encoder_from_folder(text_encoder)
        folder = Path(text_encoder)
        # The model folder usually holds the tokenizer too.
        if not data.get("tokenizer") and any(
            (folder / n).is_file() for n in ("sentencepiece.bpe.model", "tokenizer.json")
        ):
            data["tokenizer"] = str(folder)
    return from_dict(CCLMConfig, data, where=where)


# The official sizes (configs/pretrain/multilingual_cclm_x2vlm_*.yaml): XLM-R's config.json values,
# and the top 6 layers of bert-base/large as the cross encoder.
_XLMR_COMMON = {
    "vocab_size": 250002,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
_XLMR_BASE = {
    **_XLMR_COMMON,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
_XLMR_LARGE = {
    **_XLMR_COMMON,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}

CCLM_PRESETS: dict[str, dict[str, Any]] = {
    # The original CCLM base (official configs/Pretrain_3m.yaml and Pretrain_4m.yaml): Swin-B 224
    # (config_swinB_224.json) and 12 layers of XLM-R large width, 6 text + 6 fusion
    # (text_num_hidden_layers 12, fusion_layer 6): 525,677,393 parameters, as the official code builds.
    "cclm_base_swin": {
        "max_tokens": 40,
        "swin": {
            "encoder": "swin",
            "embed_dim": 128,
            "depths": [2, 2, 18, 2],
            "stage_heads": [4, 8, 16, 32],
            "window_size": 7,
        },
        "text_encoder": {"arch": "xlm-roberta", "config": {**_XLMR_LARGE, "num_hidden_layers": 6}},
        "cross": {"num_layers": 6, "num_heads": 16, "intermediate_size": 4096},
    },
    # BEiT-2 base + XLM-R base (12 layers) + 6 cross layers: 615.54M parameters, 192M of them the MLM
    # head's own decoder over XLM-R's 250k pieces (the official head is not tied to the embeddings).
    "cclm_x2vlm_base": {
        "vision": {"width": 768, "depth": 12, "num_heads": 12, "patch_size": 16},
        "text_encoder": {"arch": "xlm-roberta", "config": _XLMR_BASE},
        "cross": {"num_layers": 6, "num_heads": 12, "intermediate_size": 3072},
    },
    # BEiT-2 large + XLM-R large (24 layers) + 6 bert-large cross layers: 1,225.07M parameters.
    "cclm_x2vlm_large": {
        "vision": {"width": 1024, "depth": 24, "num_heads": 16, "patch_size": 16},
        "text_encoder": {"arch": "xlm-roberta", "config": _XLMR_LARGE},
        "cross": {"num_layers": 6, "num_heads": 16, "intermediate_size": 4096},
    },
    # The shapes of x2vlm_tiny (2 text + 2 fusion layers, 64 wide), so its checkpoints map onto it.
    "cclm_tiny": {
        "image_res": 64,
        "embed_dim": 32,
        "max_tokens": 24,
        "vision": {
            "width": 64,
            "depth": 2,
            "num_heads": 4,
            "patch_size": 8,
            "drop_path_rate": 0.0,
            "abs_pos_emb": True,
        },
        "text_encoder": {
            "arch": "xlm-roberta",
            "config": {
                "vocab_size": 512,
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "max_position_embeddings": 130,
                "type_vocab_size": 1,
                "layer_norm_eps": 1e-5,
                "pad_token_id": 1,
                "bos_token_id": 0,
                "eos_token_id": 2,
            },
        },
        "cross": {"num_layers": 2, "num_heads": 4, "intermediate_size": 128},
    },
}
