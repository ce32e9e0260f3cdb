"""Input pipeline rate: augmented pre-training batches from shards, against the step rate they must feed.

    python benchmarks/dataloader.py --workers 0 1 2

Reads the pre-training image-text and region-text streams exactly as ``x2vlm pretrain`` does
(shard streams; RandomResizedCrop + flip + RandAugment or the region sampler; whole-word MLM
masking; collate to uint8 pixels) with 0..N DataLoader workers. For each it prints images/s by
the wall clock, and the CPU time per image in the workers and in the process they feed (on a
shared machine the wall clock also counts other people's work; CPU time does not).

The demand is the images/s one GPU's training process consumes: ``--demand`` image-text pairs/s
(default: x2vlm_base, bf16, batch 64 on one H100, the "parity and pre-training step throughput
on one H100" entry of docs/benchmarks.md) plus the region images that come with them
(``train.region_batch_images`` per ``train.batch_size``). From the 1-worker CPU time per image
(a worker with a core to itself, as on a GPU node) it prints how many workers per GPU supply
twice the demand.

Without ``--shards`` it generates the shapes world with photo-like texture (so JPEGs cost what
photos cost to decode, not flat colours) at ``--image-size`` and prepares it with the Beam job,
keeping ``--image-size`` as prepare-data's max_image_side: 384 is the full pipeline's default.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from PIL import Image
from record import append_entry, command_line

from x2vlm_core.data.augment import crop_corners, rand_augment, should_flip
from x2vlm_core.data.collate import TextEncoder, pretrain_image_text_batch, pretrain_region_batch, sample_rng
from x2vlm_core.data.streaming import BatchStream, MixedStream, ShardStream, batch_loader, dataset_shards
from x2vlm_core.data.transforms import decode_for_crop, image_to_uint8, open_image
from x2vlm_core.train.config import TrainConfig

IMAGE_TEXT, REGION_TEXT = "pretrain_image_text", "pretrain_region_text"
GPU_STEP_SOURCE = "x2vlm_base bf16 batch 64 on one H100 (docs/benchmarks.md, pre-training step throughput)"
WORKERS_PER_GPU = 14  # a 16-core, 1-GPU node, less the training process and the system


def add_photo_texture(world: Path, seed: int = 0) -> None:
    """Give the world's JPEG files the grain and shading of photos, at the same size.

    Flat synthetic colours decode several times faster than a photo of the same size would.
    """
    rng = np.random.default_rng(seed)
    for path in sorted(world.rglob("*.jpg")):
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        height, width, _ = pixels.shape
        shading = rng.normal(128, 40, (height // 16 + 2, width // 16 + 2, 3)).clip(0, 255).astype(np.uint8)
        shading = np.asarray(Image.fromarray(shading).resize((width, height), Image.BICUBIC), np.float32) - 128
        photo = pixels * 0.8 + shading + rng.normal(20, 8, pixels.shape)
        Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(path, format="JPEG", quality=95)


def prepare(workdir: Path, num_images: int, image_size: int) -> Path:
    from x2vlm_core.data.synthetic import generate_shapes_world
    from x2vlm_core.dataprep.beam_job import run_prepare_data

    generate_shapes_world(workdir / "world", num_images=num_images, seed=0, image_size=image_size)
    add_photo_texture(workdir / "world")
    run_prepare_data(
        str(workdir / "world" / "sources.yaml"),
        str(workdir / "shards"),
        shard_size=64,
        max_image_side=image_size,
        overwrite=True,
    )
    return workdir / "shards"


def _samples(start, worker, shards, dataset, cfg):
    stream = ShardStream(
        shards, seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, loop=True, name=dataset, worker=worker
    )
    return MixedStream([stream], [1.0], seed=cfg.seed, name=dataset, start=start)


def collates(image_res: int, batch: int, cfg: TrainConfig) -> dict[str, tuple[int, Callable]]:
    """dataset -> (samples per batch, the collate ``x2vlm pretrain`` uses for it)."""
    text = TextEncoder("builtin:bert-base-uncased", 40)
    region_images = batch * cfg.region_batch_images // cfg.batch_size
    return {
        IMAGE_TEXT: (
            batch,
            functools.partial(
                pretrain_image_text_batch, text=text, image_res=image_res, masking=cfg.masking, augment=cfg.augment
            ),
        ),
        REGION_TEXT: (
            region_images,
            functools.partial(
                pretrain_region_batch,
                text=text,
                image_res=image_res,
                grid=image_res // 16,
                max_regions=cfg.max_regions,
                batch_size=batch * cfg.region_batch_size // cfg.batch_size,
                masking=cfg.masking,
                augment=cfg.augment,
            ),
        ),
    }


@dataclass
class Rate:
    images_per_s: float  # wall clock: what this (possibly shared) machine delivered
    worker_cpu_ms: float  # CPU per image in the processes that build batches (the main one with 0 workers)
    main_cpu_ms: float  # CPU per image in the process that receives them (0 with 0 workers: counted above)

    @property
    def per_busy_worker(self) -> float:
        """Images/s of one worker with a core to itself: the rate a GPU node's workers run at."""
        return 1e3 / self.worker_cpu_ms


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def measure(
    shards_root: Path, dataset: str, workers: int, batch: int, collate: Callable, batches: int, cfg: TrainConfig
) -> Rate:
    shards = dataset_shards(str(shards_root), dataset, "train")
    make_samples = functools.partial(_samples, shards=shards, dataset=dataset, cfg=cfg)
    main = psutil.Process()
    others = {child.pid for child in main.children(recursive=True)}
    loader = batch_loader(BatchStream(make_samples, batch, collate), workers)
    for _ in range(max(workers, 1)):  # start-up (worker processes, first shards open) is not the steady rate
        next(loader)
    # CPU time, not only wall time: on a shared machine the wall clock also counts other people's work.
    builders = [child for child in main.children(recursive=True) if child.pid not in others] or [main]
    cpu_before, main_before, started = _cpu_seconds(builders), _cpu_seconds([main]), time.perf_counter()
    for _ in range(batches):
        next(loader)
    wall = time.perf_counter() - started
    images = batch * batches
    main_ms = 0.0 if builders == [main] else (_cpu_seconds([main]) - main_before) / images * 1e3
    return Rate(images / wall, (_cpu_seconds(builders) - cpu_before) / images * 1e3, main_ms)


def stage_breakdown(shards_root: Path, image_res: int, cfg: TrainConfig, count: int = 256) -> dict[str, float]:
    """CPU ms per image-text sample in each step of its collate, in this process (texts in batches of 32)."""
    text = TextEncoder("builtin:bert-base-uncased", 40)
    stream = iter(
        ShardStream(
            dataset_shards(str(shards_root), IMAGE_TEXT, "train"),
            seed=cfg.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            loop=True,
            name=IMAGE_TEXT,
        )
    )
    clock = time.process_time
    spent = dict.fromkeys(
        [
            "shard read",
            "open + crop box",
            "decode",
            "crop + resize",
            "flip",
            "RandAugment",
            "to uint8 tensor",
            "tokenise + mask",
        ],
        0.0,
    )

    def timed(stage: str, started: float) -> float:
        now = clock()
        spent[stage] += now - started
        return now

    captions, rngs = [], []
    for _ in range(count):
        t = clock()
        sample = next(stream)
        t = timed("shard read", t)
        rng = sample_rng(sample)
        caption = rng.choice(sample["meta"]["captions"])
        image = open_image(sample["images"][0], sample["key"])
        box = crop_corners(image.width, image.height, rng, cfg.augment)
        t = timed("open + crop box", t)
        image, box = decode_for_crop(image, box, image_res)
        t = timed("decode", t)
        image = image.resize((image_res, image_res), Image.BICUBIC, box=box)
        t = timed("crop + resize", t)
        if should_flip([caption], rng, cfg.augment.flip):
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        t = timed("flip", t)
        image = rand_augment(image, rng, cfg.augment.randaug_ops, cfg.augment.randaug_magnitude)
        t = timed("RandAugment", t)
        image_to_uint8(image)
        timed("to uint8 tensor", t)
        captions.append(caption)
        rngs.append(rng)  # masking draws after the image's choices, as in the collate
    t = clock()
    for first in range(0, count, 32):
        text.masked(captions[first : first + 32], cfg.masking, rngs[first : first + 32])
    timed("tokenise + mask", t)
    return {stage: seconds / count * 1e3 for stage, seconds in spent.items()}


def stored_image_stats(shards_root: Path, count: int = 64) -> str:
    stream = iter(ShardStream(dataset_shards(str(shards_root), IMAGE_TEXT, "train"), name=IMAGE_TEXT))
    samples = [next(stream) for _ in range(count)]
    sizes = {open_image(s["images"][0]).size for s in samples}
    mean_kb = sum(len(s["images"][0]) for s in samples) / count / 1024
    return f"stored images {', '.join(f'{w}x{h}' for w, h in sorted(sizes)[:3])}, {mean_kb:.0f} KB JPEG on average"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", help="prepare-data output with pretrain_image_text and pretrain_region_text")
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=384, help="prepare-data max_image_side (and world size)")
    parser.add_argument("--image-res", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32, help="image-text pairs per batch")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--demand", type=float, default=233.2, help="image-text pairs/s one GPU's training consumes")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if 1 not in args.workers:
        parser.error("--workers must include 1: the workers needed per GPU come from the 1-worker rates")
    cfg = TrainConfig()
    region_per_pair = cfg.region_batch_images / cfg.batch_size
    demand = {IMAGE_TEXT: args.demand, REGION_TEXT: args.demand * region_per_pair}
    load = "load average at start {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())

    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(args.shards) if args.shards else prepare(Path(tmp), args.num_images, args.image_size)
        lines = [
            f"{stored_image_stats(shards)}; batches at {args.image_res} px; {load}",
            f"demand per GPU: {args.demand} image-text pairs/s ({GPU_STEP_SOURCE}) + {region_per_pair:g} "
            f"region images per pair (train.region_batch_images / train.batch_size) = "
            f"{sum(demand.values()):.1f} images/s",
            "",
            "CPU ms per image-text sample, 0 workers: "
            + ", ".join(f"{stage} {ms:.2f}" for stage, ms in stage_breakdown(shards, args.image_res, cfg).items()),
            "",
            "| stream | workers | images/s (wall) | worker CPU ms / image | main-process CPU ms / image "
            "| images/s per busy worker |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        print("\n".join(lines), flush=True)
        per_worker = {}
        for dataset, (batch, collate) in collates(args.image_res, args.batch, cfg).items():
            for workers in args.workers:
                rate = measure(shards, dataset, workers, batch, collate, args.batches, cfg)
                if workers == 1:
                    per_worker[dataset] = rate.per_busy_worker
                lines.append(
                    f"| {dataset} | {workers} | {rate.images_per_s:.1f} | {rate.worker_cpu_ms:.2f} | "
                    f"{rate.main_cpu_ms:.2f} | {rate.per_busy_worker:.1f} |"
                )
                print(lines[-1], flush=True)
    # Worker-seconds per second of training, for twice the demand of each stream.
    needed = 2 * sum(demand[d] / per_worker[d] for d in demand)
    lines += [
        "",
        f"workers per GPU for 2x demand: {needed:.2f} -> {math.ceil(needed)} "
        f"(of ~{WORKERS_PER_GPU} on a 16-core 1-GPU node); supply / demand with {WORKERS_PER_GPU} workers: "
        f"{2 * WORKERS_PER_GPU / needed:.1f}x",
    ]
    print(lines[-1])
    printed = "\n".join(lines)
    if not args.no_record:
        append_entry("pre-training input pipeline rate", command_line(), printed)


if __name__ == "__main__":
    main()
