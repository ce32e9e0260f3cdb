"""X-VLM configuration: an image encoder from timm (Swin, DeiT or CLIP-ViT) and X-VLM's BERT stack.

X-VLM (the official ``models.xvlm.XVLMBase``) is X²-VLM's predecessor, told apart in a saved
``config.yaml`` by ``family: xvlm``. Its text side is one BERT stack whose layers from
``text.fusion_start_at`` on cross-attend to the image (the official BERT config's
``fusion_layer``: 6 of 12 for base). Its image side is, as the official options go:

- ``swin`` (the released checkpoints): Swin with patch 4 and four stages; the output is the last
  stage's grid after the final LayerNorm, preceded by their mean. Regions are masks on that final
  grid (total stride 32, the official ``patch_size``);
- ``deit`` / ``clip_vit``: a ViT with patch 16 whose own CLS token comes first; for regions, the
  top ``local_attn_depth`` blocks attend only inside the region's mask (the official "local
  attention").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from x2vlm_core.errors import ConfigError
from x2vlm_core.models.config import TextConfig

FAMILY = "xvlm"
ENCODERS = ("swin", "deit", "clip_vit")
SWIN_PATCH = 4  # Swin's patch embedding; each later stage halves the grid


@dataclass
class XVLMVisionConfig:
    encoder: str = "swin"
    drop_path_rate: float = 0.1
    # Swin: width of the first stage (doubled by each later one), blocks and heads per stage.
    embed_dim: int = 128
    depths: list[int] = field(default_factory=lambda: [2, 2, 18, 2])
    stage_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    window_size: int = 7
    # The Swin's absolute position embedding (the official ``ape``; X-VLM's released models have none).
    # A small model trained from scratch needs it to learn boxes: the windows' relative biases
    # carry no absolute position.
    abs_pos_emb: bool = False
    # DeiT / CLIP-ViT.
    width: int = 768
    depth: int = 12
    num_heads: int = 12
    patch_size: int = 16
    local_attn_depth: int = 4

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"vision.encoder {self.encoder!r} is not one of {', '.join(ENCODERS)}")
        if self.encoder == "swin":
            if not self.depths or len(self.depths) != len(self.stage_heads):
                raise ConfigError(
                    f"vision.depths {self.depths} and vision.stage_heads {self.stage_heads} "
                    "must name the same, non-zero number of stages"
                )
            for stage, heads in enumerate(self.stage_heads):
                if (self.embed_dim << stage) % heads:
                    raise ConfigError(
                        f"Swin stage {stage} width {self.embed_dim << stage} is not divisible by its {heads} heads"
                    )
        elif self.width % self.num_heads:
            raise ConfigError(f"vision width {self.width} is not divisible by its {self.num_heads} heads")
        elif not 0 <= self.local_attn_depth <= self.depth:
            raise ConfigError(f"vision.local_attn_depth {self.local_attn_depth} must be in [0, depth={self.depth}]")

    @property
    def out_width(self) -> int:
        """The width of the tokens the text side sees (the official ``vision_width``)."""
        return self.embed_dim << (len(self.depths) - 1) if self.encoder == "swin" else self.width

    @property
    def stride(self) -> int:
        """Pixels per output token side: 32 for four Swin stages, the patch size for a ViT."""
        return SWIN_PATCH << (len(self.depths) - 1) if self.encoder == "swin" else self.patch_size


@dataclass
class XVLMConfig:
    name: str = "xvlm_base"
    family: str = FAMILY
    image_res: int = 224
    embed_dim: int = 256
    temp: float = 0.07
    tokenizer: str = "builtin:bert-base-uncased"
    max_tokens: int = 40
    # Always 0: X-VLM reads images only (the field is what the stages read to tell video models).
    frame_len: int = 0
    vision: XVLMVisionConfig = field(default_factory=XVLMVisionConfig)
    text: TextConfig = field(default_factory=lambda: TextConfig(num_layers=12, fusion_start_at=6))

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise ConfigError(f"family {self.family!r} is not {FAMILY!r}; an X-VLM config must say family: {FAMILY}")
        if self.frame_len:
            raise ConfigError("X-VLM models read images only; leave frame_len at 0 (use an X²-VLM video preset)")
        if self.image_res % self.vision.stride:
            raise ConfigError(
                f"image_res {self.image_res} must be a multiple of {self.vision.stride} "
                f"(the {self.vision.encoder} encoder's output stride)"
            )
        if not 0 <= self.text.fusion_start_at < self.text.num_layers:
            raise ConfigError(
                f"text.fusion_start_at {self.text.fusion_start_at} must be in "
                f"[0, text.num_layers={self.text.num_layers})"
            )
        if self.text.hidden_size % self.text.num_heads:
            raise ConfigError(f"text width {self.text.hidden_size} is not divisible by its {self.text.num_heads} heads")

    @property
    def num_patches_side(self) -> int:
        """The side of the output token grid, on which region masks live (7 for Swin at 224)."""
        return self.image_res // self.vision.stride
