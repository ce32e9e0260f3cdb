"""prepare-data throughput: the Beam job against a plain loop doing the same image work.

Both read the same JPEGs (shapes-world COCO images at ``--image-size`` px) and run the same
decode → validate → resize to ``--max-image-side`` → JPEG re-encode functions. The loop does only
that, in one process; the Beam job also deduplicates, sorts, writes shards and the index. Beam runs
on the DirectRunner, ``in_memory`` (one process, like the loop) and ``multi_processing`` with one
worker per core; never ``multi_threading`` (it drops elements). Each run is repeated and the
fastest kept, since other work on the machine only ever slows a run down. Prints images/s and
the ratios to the loop.

    .venv/bin/python benchmarks/dataprep.py --num-images 2000 --image-size 512 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from x2vlm_core.data.images import encode_jpeg, load_and_validate, resize_max_side
from x2vlm_core.data.synthetic import generate_shapes_world
from x2vlm_core.dataprep.beam_job import run_prepare_data


def plain_loop(paths: list[Path], max_side: int) -> float:
    """Seconds for one single-process pass of decode/validate/resize/encode over ``paths``."""
    start = time.perf_counter()
    for path in paths:
        image, reason = load_and_validate(path)
        assert reason is None, (path, reason)
        encode_jpeg(resize_max_side(image, max_side)[0])
    return time.perf_counter() - start


def beam_job(source: dict, out: Path, max_side: int, args: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    summary = run_prepare_data(
        [source], out, shard_size=256, max_image_side=max_side, pipeline_args=args, overwrite=True
    )
    return time.perf_counter() - start, summary["total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--max-image-side", type=int, default=256)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="multi_processing workers (default: all cores)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind; the fastest counts")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dataprep-bench-") as folder:
        world = Path(folder) / "world"
        generate_shapes_world(world, num_images=options.num_images, image_size=options.image_size)
        # Every COCO image once: the captions of both folders, as two sources would give.
        images = sorted((world / "coco/train2014").glob("*.jpg")) + sorted((world / "coco/val2014").glob("*.jpg"))
        source = {
            "format": "karpathy",
            "dataset": "bench",
            "annotations": str(world / "coco/dataset_coco.json"),
            "images": str(world / "coco"),
        }

        plain_loop(images[:50], options.max_image_side)  # warm the page cache and imports alike
        runs = {
            "Beam DirectRunner in_memory": ["--direct_running_mode=in_memory"],
            f"Beam DirectRunner multi_processing x{options.workers}": [
                "--direct_running_mode=multi_processing",
                f"--direct_num_workers={options.workers}",
            ],
        }
        best = {"plain loop, 1 process": float("inf"), **{label: float("inf") for label in runs}}
        for _ in range(options.repeats):  # interleaved, so a busy spell hurts every kind alike
            best["plain loop, 1 process"] = min(
                best["plain loop, 1 process"], plain_loop(images, options.max_image_side)
            )
            for label, args in runs.items():
                seconds, written = beam_job(source, Path(folder) / label.split()[-1], options.max_image_side, args)
                assert written == len(images), (label, written, len(images))
                best[label] = min(best[label], seconds)
        rows = [(label, seconds, len(images)) for label, seconds in best.items()]

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{len(images)} JPEGs of {options.image_size}x{options.image_size} px -> longer side {options.max_image_side}, "
        f"fastest of {options.repeats} runs each, 1-minute load average at the end: {os.getloadavg()[0]:.1f}"
    )
    print("| run | seconds | images/s | ratio to plain loop |")
    print("| --- | --- | --- | --- |")
    loop_rate = rows[0][2] / rows[0][1]
    for label, seconds, count in rows:
        rate = count / seconds
        print(f"| {label} | {seconds:.1f} | {rate:.1f} | {rate / loop_rate:.2f} |")


if __name__ == "__main__":
    main()
