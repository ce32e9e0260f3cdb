"""VLMo configuration: the shape of a multiway transformer and its presets.

VLMo is a second model family beside X²-VLM. Its config is its own dataclass (the
X²-VLM ``ModelConfig`` describes two separate encoders; VLMo has one shared stack),
told apart in a saved ``config.yaml`` by ``family: vlmo``. It carries the fields the
data pipeline reads from any model config: ``image_res``, ``tokenizer``, ``max_tokens``
and ``num_patches_side``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from x2vlm_core.errors import ConfigError

FAMILY = "vlmo"
TASK_HEADS = ("vqa", "nlvr2")


@dataclass
class VLMoConfig:
    name: str = "vlmo_base"
    family: str = FAMILY
    image_res: int = 224
    patch_size: int = 16
    width: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    # Blocks from this index on also hold a vision-language expert (VL-FFN).
    vlffn_start: int = 10
    # Layer scale init of gamma_1/gamma_2; null builds blocks without layer scale (base_plus).
    layer_scale_init: float | None = 0.1
    # True: one shared relative position bias table (image 2-D, text 1-D, cross rows).
    # False: absolute position embeddings for image and text (base_plus).
    relative_position: bool = True
    # Text length the table's text rows were sized for (the official max_text_len_of_initckpt,
    # the text-only stage's length): 2 rows per offset, so texts up to this long fit.
    text_rel_pos_len: int = 196
    drop_path_rate: float = 0.1
    vocab_size: int = 30522
    # A folder with vocab.txt, or "builtin:bert-base-uncased" for the vocabulary shipped offline.
    tokenizer: str = "builtin:bert-base-uncased"
    # Longest text in tokens (the official max_text_len): sizes the text position rows.
    max_tokens: int = 40
    # Initial temperature of both contrastive heads (stored as log(1/temp)).
    temp: float = 0.07
    # Task heads built on top ("vqa", "nlvr2"); fine-tuning adds them with add_task_head.
    task_heads: list[str] = field(default_factory=list)
    vqa_answers: int = 3129
    # What the VQA head's outputs stand for, in order (written by VQA fine-tuning, so a saved task
    # model can name its answers); empty for an official checkpoint, whose list is the official one.
    vqa_answer_list: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise ConfigError(f"family {self.family!r} is not {FAMILY!r}; a VLMo config must say family: {FAMILY}")
        if self.image_res % self.patch_size:
            raise ConfigError(f"image_res {self.image_res} must be a multiple of patch_size {self.patch_size}")
        if self.width % self.num_heads:
            raise ConfigError(f"width {self.width} is not divisible by its {self.num_heads} heads")
        if not 0 <= self.vlffn_start <= self.depth:
            raise ConfigError(
                f"vlffn_start {self.vlffn_start} must be in [0, depth={self.depth}] "
                "(depth means no VL-FFN, as in the text-only stage)"
            )
        if self.relative_position and self.max_tokens > self.text_rel_pos_len:
            raise ConfigError(
                f"max_tokens {self.max_tokens} exceeds text_rel_pos_len {self.text_rel_pos_len}; "
                "raise text_rel_pos_len (it sizes the text rows of the position table)"
            )
        if self.vqa_answer_list and len(self.vqa_answer_list) != self.vqa_answers:
            raise ConfigError(
                f"vqa_answer_list holds {len(self.vqa_answer_list)} answers, vqa_answers is "
                f"{self.vqa_answers}; they must agree (one head output per answer)"
            )
        unknown = sorted(set(self.task_heads) - set(TASK_HEADS))
        if unknown:
            raise ConfigError(f"unknown task head(s) {unknown}; available: {', '.join(TASK_HEADS)}")

    @property
    def num_patches_side(self) -> int:
        return self.image_res // self.patch_size


# The README's models (224 px, patch 16, FFN 4x); counts are those of `official_parameter_count`.
VLMO_PRESETS: dict[str, dict] = {
    # 12 layers, 768 wide, 12 heads, VL-FFN in the top 2: 175M.
    "vlmo_base": {"width": 768, "depth": 12, "num_heads": 12, "vlffn_start": 10},
    # 24 layers, 544 wide, 16 heads, VL-FFN in the top 3, absolute positions, no layer scale: 167M.
    "vlmo_base_plus": {
        "width": 544,
        "depth": 24,
        "num_heads": 16,
        "vlffn_start": 21,
        "relative_position": False,
        "layer_scale_init": None,
    },
    # 24 layers, 1024 wide, 16 heads, VL-FFN in the top 3: 562M.
    "vlmo_large": {"width": 1024, "depth": 24, "num_heads": 16, "vlffn_start": 21},
    # For tests and the local pipeline.
    "vlmo_tiny": {
        "image_res": 64,
        "patch_size": 8,
        "width": 64,
        "depth": 4,
        "num_heads": 4,
        "vlffn_start": 2,
        "max_tokens": 24,
        "text_rel_pos_len": 24,
        "drop_path_rate": 0.0,
    },
}
