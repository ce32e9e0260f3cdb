"""Shard bytes and prepare-data CPU per sample on photo-like inputs: the measured basis of docs/scaling.md.

    OMP_NUM_THREADS=1 python benchmarks/shard_sizing.py

Writes photo-like JPEGs of ``--photo-size`` (640x480: 4:3, as COCO and most Conceptual Captions
photos), with benchmarks/dataloader.py's shading and grain so they cost what photos cost to decode
and compress, in a caption TSV source; and WebVid-layout mp4 clips of ``--clip-size`` (640x360,
16:9) of the same texture, ``--clip-seconds`` long at 8 fps. Each corpus runs through the
prepare-data Beam job (in_memory: one process, so its CPU time is the job's) at every
``--sides`` max_image_side, at two corpus sizes: the CPU per sample is the slope between them, so
the job's fixed start-up cost falls out. Shard bytes per sample come from index.json. It also
times PyAV decoding per frame of one clip, to scale the video cost to longer clips.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import numpy as np
from dataloader import add_photo_texture
from PIL import Image, ImageDraw
from record import append_entry, command_line

from x2vlm_core.data.shards import read_index
from x2vlm_core.data.video import encode_mp4
from x2vlm_core.dataprep.beam_job import run_prepare_data


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def scene(rng: np.random.Generator, size: tuple[int, int], shift: int = 0) -> Image.Image:
    """A few coloured shapes on a coloured ground; ``shift`` moves them (frames of a clip)."""
    width, height = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 10, width // 3)), int(rng.integers(height // 10, height // 3))
        box = (x + shift, y, x + shift + w, y + h)
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return image


def write_photos(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` photo-like JPEGs and a caption TSV naming them; returns the sources list."""
    rng = np.random.default_rng(0)
    images = folder / "images"
    images.mkdir(parents=True)
    lines = []
    for index in range(count):
        scene(rng, size).save(images / f"{index:07d}.jpg", format="JPEG", quality=95)
        lines.append(f"a photo of some shapes, number {index}\t{index:07d}.jpg")
    add_photo_texture(images)
    (folder / "captions.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_clips(folder: Path, count: int, size: tuple[int, int], seconds: int, fps: int = 8) -> Path:
    """``count`` WebVid-layout clips (results csv + videos/<page_dir>/<videoid>.mp4) of textured frames."""
    rng = np.random.default_rng(1)
    frames_dir = folder / "frames"
    frames_dir.mkdir(parents=True)
    rows = ["videoid,name,page_dir"]
    for clip in range(count):
        seed = int(rng.integers(0, 2**31))
        for frame in range(seconds * fps):
            scene(np.random.default_rng(seed), size, shift=frame * 4).save(frames_dir / f"{frame:04d}.jpg", quality=95)
        add_photo_texture(frames_dir, seed=clip)
        frames = [Image.open(path).convert("RGB") for path in sorted(frames_dir.glob("*.jpg"))]
        video = folder / "videos" / "page" / f"{clip:07d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(encode_mp4(frames, fps=fps))
        rows.append(f"{clip:07d},a clip of moving shapes {clip},page")
    (folder / "results.csv").write_text("\n".join(rows) + "\n")
    return folder


def prepare(sources: list[dict], out: Path, side: int) -> tuple[float, int, int]:
    """(job CPU seconds, samples, shard bytes) of one prepare-data run."""
    before = cpu_seconds()
    summary = run_prepare_data(sources, out, shard_size=1000, max_image_side=side, overwrite=True)
    used = cpu_seconds() - before
    index = read_index(out)
    shard_bytes = sum(s["bytes"] for splits in index["datasets"].values() for e in splits.values() for s in e["shards"])
    return used, summary["total"], shard_bytes


def decode_ms_per_frame(video: Path) -> float:
    import av

    before, frames = cpu_seconds(), 0
    with av.open(str(video)) as container:
        for _ in container.decode(video=0):
            frames += 1
    return (cpu_seconds() - before) * 1000 / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs=2, default=[150, 450], help="two corpus sizes (photos)")
    parser.add_argument("--videos", type=int, nargs=2, default=[12, 36], help="two corpus sizes (clips)")
    parser.add_argument("--sides", type=int, nargs="+", default=[384, 256], help="max_image_side values")
    parser.add_argument("--photo-size", type=int, nargs=2, default=[640, 480])
    parser.add_argument("--clip-size", type=int, nargs=2, default=[640, 360])
    parser.add_argument("--clip-seconds", type=int, default=4)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    options = parser.parse_args()

    lines = []
    with tempfile.TemporaryDirectory(prefix="shard-sizing-") as folder:
        root = Path(folder)
        corpora = {}
        for n in options.images:
            data = write_photos(root / f"photos-{n}", n, tuple(options.photo_size))
            corpora[("photo", n)] = [
                {
                    "format": "caption_tsv",
                    "dataset": "d",
                    "annotations": str(data / "captions.tsv"),
                    "images": str(data / "images"),
                }
            ]
        for n in options.videos:
            data = write_clips(root / f"clips-{n}", n, tuple(options.clip_size), options.clip_seconds)
            corpora[("clip", n)] = [
                {
                    "format": "webvid",
                    "dataset": "v",
                    "annotations": str(data / "results.csv"),
                    "videos": str(data / "videos"),
                }
            ]
        photo_bytes = np.mean(
            [p.stat().st_size for p in (root / f"photos-{options.images[0]}" / "images").glob("*.jpg")]
        )
        clip_bytes = np.mean([p.stat().st_size for p in (root / f"clips-{options.videos[0]}").rglob("*.mp4")])
        per_frame = decode_ms_per_frame(next((root / f"clips-{options.videos[0]}").rglob("*.mp4")))
        lines.append(
            f"inputs: {options.photo_size[0]}x{options.photo_size[1]} photo-like JPEGs, {photo_bytes / 1000:.0f} KB on average; "
            f"{options.clip_size[0]}x{options.clip_size[1]} mp4 clips of {options.clip_seconds} s at 8 fps, "
            f"{clip_bytes / 1000:.0f} KB on average; PyAV decode {per_frame:.2f} CPU ms per frame"
        )
        lines += [
            "",
            "| input | max_image_side | samples | shard KB / sample | job CPU ms / sample (slope) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for kind, sizes in (("photo", options.images), ("clip", options.videos)):
            for side in options.sides:
                runs = [prepare(corpora[(kind, n)], root / f"out-{kind}-{n}-{side}", side) for n in sizes]
                (cpu_small, small, _), (cpu_large, large, shard_bytes) = runs
                slope = (cpu_large - cpu_small) / (large - small) * 1000
                lines.append(f"| {kind} | {side} | {large} | {shard_bytes / large / 1000:.1f} | {slope:.1f} |")
    text = "\n".join(lines)
    print(text)
    if not options.no_record:
        append_entry("prepare-data shard bytes and CPU per sample, photo-like inputs", command_line(), text)


if __name__ == "__main__":
    main()
