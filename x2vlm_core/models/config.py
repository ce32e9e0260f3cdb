"""Model configuration: the shape of an X²-VLM (BEiT-2 vision + BERT text/fusion stack)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VisionConfig:
    """BEiT-2 vision encoder (official `beit2.VisionTransformer` layout)."""

    width: int = 768
    depth: int = 12
    num_heads: int = 12
    patch_size: int = 16
    mlp_ratio: float = 4.0
    layer_scale_init: float = 0.1
    drop_path_rate: float = 0.1
    # A learned absolute position embedding (BEiT's ``use_abs_pos_emb``). X²-VLM's BEiT-2 has none
    # (relative position biases only); small models trained from scratch localise far better with it,
    # since the relative biases start at zero and carry no absolute position.
    abs_pos_emb: bool = False


@dataclass
class TextConfig:
    """BERT stack: layers below ``fusion_start_at`` encode text, the rest add cross-attention."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 18
    fusion_start_at: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    pad_token_id: int = 0
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1


@dataclass
class ModelConfig:
    name: str = "x2vlm_base"
    image_res: int = 224
    embed_dim: int = 256
    temp: float = 0.07
    # A folder with vocab.txt, or "builtin:bert-base-uncased" for the vocabulary shipped offline.
    tokenizer: str = "builtin:bert-base-uncased"
    max_tokens: int = 40
    # Video: number of frames; 0 builds an image-only model (no frame position embedding).
    frame_len: int = 0
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)

    def __post_init__(self) -> None:
        from x2vlm_core.errors import ConfigError

        if self.image_res % self.vision.patch_size:
            raise ConfigError(
                f"image_res {self.image_res} must be a multiple of vision.patch_size {self.vision.patch_size}"
            )
        if not 0 <= self.text.fusion_start_at < self.text.num_layers:
            raise ConfigError(
                f"text.fusion_start_at {self.text.fusion_start_at} must be in [0, text.num_layers={self.text.num_layers})"
            )
        for part, width, heads in (
            ("vision", self.vision.width, self.vision.num_heads),
            ("text", self.text.hidden_size, self.text.num_heads),
        ):
            if width % heads:
                raise ConfigError(f"{part} width {width} is not divisible by its {heads} heads")

    @property
    def num_patches_side(self) -> int:
        return self.image_res // self.vision.patch_size
