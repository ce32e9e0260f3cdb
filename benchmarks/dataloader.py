"""Input pipeline rate: augmented image-text batches from shards, against the step rate they must feed.

    python benchmarks/dataloader.py --workers 0 1 2 --image-res 224 --batch 32 --demand 233.2

Reads the pre-training image-text stream exactly as ``x2vlm pretrain`` does (shard streams,
RandomResizedCrop + flip + RandAugment, whole-word MLM masking, collate) with 0..N DataLoader
workers, and prints images/s in total and per worker beside ``--demand``: the pairs/s one
training process consumes (default: the x2vlm_base bf16 H100 reading at batch 64 in
docs/benchmarks.md). Without ``--shards`` it generates the shapes world at ``--image-size``
and prepares it with the Beam job first.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

from record import append_entry, command_line
from x2vlm_core.data.collate import TextEncoder, pretrain_image_text_batch
from x2vlm_core.data.streaming import BatchStream, MixedStream, ShardStream, batch_loader, dataset_shards
from x2vlm_core.train.config import TrainConfig

DATASET = "pretrain_image_text"


def prepare(workdir: Path, num_images: int, image_size: int) -> Path:
    from components.prepare_data.beam_pipeline import run_prepare_data
    from x2vlm_core.data.synthetic import generate_shapes_world

    generate_shapes_world(workdir / "world", num_images=num_images, seed=0, image_size=image_size)
    run_prepare_data(str(workdir / "world" / "sources.yaml"), str(workdir / "shards"), shard_size=64,
                     max_image_side=image_size)
    return workdir / "shards"


def _samples(start, worker, shards, cfg):
    stream = ShardStream(shards, seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, loop=True, name=DATASET,
                         worker=worker)
    return MixedStream([stream], [1.0], seed=cfg.seed, name="image_text", start=start)


def images_per_second(shards_root: Path, workers: int, batch: int, image_res: int, batches: int) -> float:
    cfg = TrainConfig()
    shards = dataset_shards(str(shards_root), DATASET, "train")
    collate = functools.partial(pretrain_image_text_batch, text=TextEncoder("builtin:bert-base-uncased", 40),
                                image_res=image_res, masking=cfg.masking, augment=cfg.augment)
    loader = batch_loader(BatchStream(functools.partial(_samples, shards=shards, cfg=cfg), batch, collate), workers)
    next(loader)  # start-up (worker processes, first shard opens) is not the steady rate
    started = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batch * batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", help="prepare-data output with a pretrain_image_text dataset")
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=384, help="stored image side of the generated world")
    parser.add_argument("--image-res", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--demand", type=float, default=233.2, help="pairs/s one training process consumes")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(args.shards) if args.shards else prepare(Path(tmp), args.num_images, args.image_size)
        lines = [f"image-text batches of {args.batch} at {args.image_res} px; demand {args.demand} pairs/s",
                 "", "| workers | images/s | images/s per worker | supply / demand |", "| --- | --- | --- | --- |"]
        for workers in args.workers:
            rate = images_per_second(shards, workers, args.batch, args.image_res, args.batches)
            lines.append(f"| {workers} | {rate:.1f} | {rate / max(workers, 1):.1f} | {rate / args.demand:.2f} |")
            print(lines[-1] if len(lines) > 5 else "\n".join(lines), flush=True)
    printed = "\n".join(lines)
    if not args.no_record:
        append_entry("pre-training input pipeline rate", command_line(), printed)


if __name__ == "__main__":
    main()
