"""Training configuration shared by pre-training and fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass, field

from x2vlm_core.data.masking import MaskingConfig


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    # New heads (projections, ITM, box) train at lr * lr_mult.
    lr_mult: float = 2.0
    warmup_steps: int = 2500
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    steps: int = 100
    batch_size: int = 32
    # Region-text batches: images per batch and region texts per image.
    region_batch_images: int = 16
    max_regions: int = 5
    seed: int = 42
    zero_stage: int = 1
    precision: str = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_accumulation: int = 1
    num_workers: int = 0
    shuffle_buffer: int = 256
    log_every: int = 10
    save_every: int = 0  # 0: only at the end
    stop_itm_after: int = 0  # 0: never; the official 1B recipe stops ITM after hard negatives gave NaN
    optim: OptimConfig = field(default_factory=OptimConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
