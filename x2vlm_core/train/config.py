"""Training configuration shared by pre-training and fine-tuning.

Batch sizes are global (all ranks and accumulation steps together): each rank takes
``batch / (world_size * gradient_accumulation)`` per micro-step, so a run gives the same
optimisation on 1 GPU or 64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from x2vlm_core.data.augment import AugmentConfig
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
class StreamConfig:
    """One pre-training stream: prepare-data datasets, mixed per sample by ``ratios``."""

    # null: the model family's default (pretrain.family_streams); empty: the stream is off
    datasets: list[str] | None = None
    ratios: list[float] = field(default_factory=list)  # one per dataset; empty: equal
    split: str = "train"
    loss_weight: float = 1.0  # the official iter_perc: this stream's losses count this much
    shards: str = ""  # prepare-data output holding these datasets; empty: data.shards


@dataclass
class DataConfig:
    shards: str = ""  # prepare-data output folder or gs:// prefix (the CLI's --shards overrides it)
    image_text: StreamConfig = field(default_factory=StreamConfig)
    region_text: StreamConfig = field(default_factory=StreamConfig)
    video_text: StreamConfig = field(default_factory=StreamConfig)
    # Text-only streams (no images): sentence pairs (CCLM) and single texts (VLMo's text stage).
    parallel_text: StreamConfig = field(default_factory=StreamConfig)
    text: StreamConfig = field(default_factory=StreamConfig)


@dataclass
class TrainConfig:
    steps: int = 100
    batch_size: int = 32  # image-text pairs per optimizer step, all ranks together
    # Region-text batches: images read per step and the exact number of region texts kept.
    region_batch_images: int = 16
    region_batch_size: int = 32
    max_regions: int = 5  # texts per image (a whole-image caption counts as one)
    video_batch_size: int = 0  # clips per step; 0: same as batch_size
    text_batch_size: int = 0  # sentence pairs or texts per step of the text-only streams; 0: same as batch_size
    # VLMo's pre-training stage: vl (vision-language, everything trains) or text (text-only MLM,
    # image side frozen). The image stage is BEiT's: start from a BEiT checkpoint with --init.
    stage: str = "vl"
    seed: int = 42
    zero_stage: int = 1
    precision: str = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_accumulation: int = 1
    activation_checkpointing: bool = False  # recompute transformer blocks in backward: less memory, ~30% slower
    # torch.compile of each transformer block: auto = on GPU only. On CPU the compile time
    # (tens of seconds) outweighs the gain for short runs; turn it on for long ones.
    compile: str = "auto"
    num_workers: int = 0  # DataLoader workers per stream and rank
    shuffle_buffer: int = 256  # samples shuffled together; 0 keeps the stored order
    log_every: int = 10
    save_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2  # complete DeepSpeed checkpoints kept; older ones are deleted
    # Seconds between SIGTERM and SIGKILL (GKE spot: 30, less torchrun's own share); a save is tried within them.
    sigterm_grace_s: float = 25.0
    tensorboard: bool = True  # event file under OUTPUT/tensorboard (rank 0)
    stop_itm_after: int = 0  # 0: never; the official 1B recipe stops ITM after hard negatives gave NaN
    # ITM's negatives: "hard" (official) draws them by ITC similarity; "random" draws any other row.
    # Use random where captions are often interchangeable (templated or synthetic text): there the
    # hardest negatives are mostly true matches, and ITM stays at its 1:2 prior.
    itm_negatives: str = "hard"
    optim: OptimConfig = field(default_factory=OptimConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Merged over the generated DeepSpeed JSON, e.g. {zero_optimization: {offload_optimizer: {device: cpu}}}.
    deepspeed: dict[str, Any] = field(default_factory=dict)
