"""Time the retrieval evaluation (ITC top-k → batched ITM re-rank) on a synthetic 1k images x 5k texts problem.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/retrieval_eval.py --images 1000 --k 256 --itm-batch-sizes 256 1024

Runs ``x2vlm_core.tasks.retrieval.evaluate`` as the evaluate stage does, with x2vlm_tiny (random
weights: the cost does not depend on them) on random 64 px JPEGs with five shapes-world-like
captions each, and prints the wall time split into encoding + ITC and the ITM re-ranking (timed
around every ``itm_logits`` call), with the re-ranking throughput in (query, candidate) pairs/s.
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import time

import numpy as np
import torch
from PIL import Image
from record import append_entry, command_line

from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.families import create_model
from x2vlm_core.tasks import retrieval

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
PLACES = ("on the left", "on the right", "at the top", "at the bottom", "in the middle")


def synthetic_samples(images: int, texts_per_image: int, side: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    pixels = np.random.default_rng(seed)
    samples = []
    for i in range(images):
        buffer = io.BytesIO()
        Image.fromarray(pixels.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        captions = [
            " and ".join(
                f"a {rng.choice(COLOURS)} {rng.choice(SHAPES)} {rng.choice(PLACES)}" for _ in range(rng.randint(1, 3))
            )
            for _ in range(texts_per_image)
        ]
        samples.append({"key": f"image-{i:05d}", "meta": {"captions": captions}, "images": [buffer.getvalue()]})
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--texts-per-image", type=int, default=5)
    parser.add_argument("--k", type=int, default=256, help="candidates re-ranked per query (k_test)")
    parser.add_argument("--itm-batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--preset", default="x2vlm_tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="do not append the result to docs/benchmarks.md")
    args = parser.parse_args()
    printed: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        printed.append(line)

    torch.manual_seed(args.seed)
    model = create_model(args.preset).eval()
    text = TextEncoder(model.config.tokenizer, model.config.max_tokens)
    samples = synthetic_samples(args.images, args.texts_per_image, model.config.image_res, args.seed)
    itm_seconds, itm_pairs = 0.0, 0
    itm_logits = model.itm_logits

    def timed_itm(*inputs):
        nonlocal itm_seconds, itm_pairs
        started = time.perf_counter()
        out = itm_logits(*inputs)
        itm_seconds += time.perf_counter() - started
        itm_pairs += len(out)
        return out

    model.itm_logits = timed_itm
    texts = args.images * args.texts_per_image
    emit(
        json.dumps(
            {
                "preset": args.preset,
                "images": args.images,
                "texts": texts,
                "k_test": args.k,
                "torch_threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
            }
        )
    )
    emit(
        "| ITM batch (pairs) | total s | encoding, ITC, ranks s | ITM re-rank s | pairs re-ranked | pairs/s | R@1 t2i (random weights) |"
    )
    emit("| --- | --- | --- | --- | --- | --- | --- |")
    for batch in args.itm_batch_sizes:
        itm_seconds, itm_pairs = 0.0, 0
        cfg = retrieval.EvalConfig(k_test=args.k, itm_batch_size=batch)
        started = time.perf_counter()
        result = retrieval.evaluate(model, samples, text, cfg)
        total = time.perf_counter() - started
        emit(
            f"| {batch} | {total:.1f} | {total - itm_seconds:.1f} | {itm_seconds:.1f} | {itm_pairs} | "
            f"{itm_pairs / itm_seconds:.0f} | {result.metrics['img_r1']:.4f} |"
        )
    if not args.no_record:
        append_entry(
            f"retrieval evaluation (ITC top-{args.k} → batched ITM re-rank), {args.images} images x "
            f"{texts} texts, {args.preset}",
            command_line(),
            "\n".join(printed),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
