"""Does pre-training learn? A few CPU minutes of a tiny model on the shapes world, then zero-shot ITC retrieval.

    .venv/bin/python benchmarks/shapes_pretrain.py --workdir runs/shapes-pretrain [--model xvlm_tiny]

generate → prepare-data → pretrain (the real run_pretrain: DeepSpeed, augmentation, image-text
and region-text streams) → zero-shot retrieval on the Karpathy test split (images the
image-text stream never saw) by ITC similarity alone, before and after pre-training.
Prints each loss at the start and the end of training, and R@1 both ways against chance
(an image's own captions among all test captions; one image among all test images).
Data already prepared in ``--workdir`` is reused. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from record import append_entry, command_line

from x2vlm_core.config_io import apply_overrides, from_dict
from x2vlm_core.data.collate import sample_images
from x2vlm_core.data.shards import iter_shard_samples, list_shards
from x2vlm_core.evaluation.metrics import retrieval_recall
from x2vlm_core.families import create_model, model_config, text_encoder_for
from x2vlm_core.release.model_folder import load_model_dir
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.pretrain import run_pretrain

# The official recipe (AdamW 0.9/0.98, wd 0.01, heads at 2x lr, linear warmup then decay,
# careful flip + RandAugment(2, 7), region crops around boxes), scaled to a tiny model and a few
# hundred steps: lr 1e-3 with a 60-step warmup, and crops of 50-100% of the image (the official
# fine-tuning range) instead of 20-100%: a shapes-world caption names every shape in the
# picture, and a 20% crop usually cuts some of them out, making the caption false.
# RandAugment is off: a shapes-world object is named by its flat colour, and Equalize turns the red
# (220, 40, 40) into (175, 0, 110), so the augmented picture no longer shows what its text says (with it,
# 800 steps moved the box losses by -3% / -1%; without it, -11% / -1%; 1600 steps, -20% / -12%).
RECIPE: dict[str, Any] = {
    "steps": 1600,
    "batch_size": 16,
    "region_batch_images": 8,
    "region_batch_size": 16,
    "log_every": 10,
    "shuffle_buffer": 256,
    "tensorboard": False,
    "optim": {"lr": 1e-3, "warmup_steps": 60},
    "augment": {"crop_scale": [0.5, 1.0], "randaug_ops": 0},
}


def prepare(workdir: Path, num_images: int, seed: int) -> Path:
    from x2vlm_core.data.synthetic import generate_shapes_world
    from x2vlm_core.dataprep.beam_job import run_prepare_data

    shards = workdir / "shards"
    if not (shards / "index.json").is_file():
        generate_shapes_world(workdir / "world", num_images=num_images, seed=seed)
        run_prepare_data(str(workdir / "world" / "sources.yaml"), str(shards), shard_size=256, max_image_side=64)
    return shards


@torch.no_grad()
def zero_shot_itc(model: Any, samples: list[dict[str, Any]]) -> dict[str, float]:
    """R@1/5 both ways from ITC similarity alone (no ITM re-ranking), and chance R@1."""
    model.eval()
    text = text_encoder_for(model.config)
    texts, txt2img, img2txt = [], [], []
    for i, sample in enumerate(samples):
        img2txt.append(list(range(len(texts), len(texts) + len(sample["meta"]["captions"]))))
        texts.extend(sample["meta"]["captions"])
        txt2img.extend([i] * len(sample["meta"]["captions"]))
    image_feat = torch.cat(
        [
            model.get_image_feat(model.get_vision_embeds(sample_images(samples[i : i + 64], model.config.image_res))[0])
            for i in range(0, len(samples), 64)
        ]
    )
    ids, atts, _ = text(texts)
    text_feat = model.get_text_feat(model.get_text_embeds(ids, atts))
    sims = (image_feat @ text_feat.t()).numpy()
    recall = retrieval_recall(sims, sims.T, txt2img, img2txt)
    return {
        "txt_r1": recall["txt_r1"],
        "txt_r5": recall["txt_r5"],
        "txt_r1_chance": float(np.mean([len(t) / len(texts) for t in img2txt])),
        "img_r1": recall["img_r1"],
        "img_r5": recall["img_r5"],
        "img_r1_chance": 1 / len(samples),
    }


def loss_change(history: list[dict[str, float]], window: int) -> dict[str, tuple[float, float]]:
    """Each loss term: mean over the first and the last ``window`` logged steps."""
    first, last = history[:window], history[-window:]
    names = [k for k in history[0] if k not in ("step", "lr", "lr_new_heads", "samples_per_s", "tokens_per_s")]
    return {name: (float(np.mean([r[name] for r in first])), float(np.mean([r[name] for r in last]))) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/shapes-pretrain")
    parser.add_argument("--num-images", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="x2vlm_tiny", help="the preset to pre-train (x2vlm_tiny, xvlm_tiny, ...)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the recipe, e.g. --set steps=600 --set augment.crop_scale=[0.5,1.0]",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append the result to docs/benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    workdir = Path(args.workdir)
    started = time.time()
    shards = prepare(workdir, args.num_images, args.seed)
    prepared = time.time() - started
    test = list(iter_shard_samples(list_shards(str(shards), "retrieval", "test")))
    train_keys = {
        s["meta"].get("image_id") for s in iter_shard_samples(list_shards(str(shards), "pretrain_image_text", "train"))
    }
    held_out = sum(s["meta"].get("cocoid", s["meta"].get("image_id")) not in train_keys for s in test)

    recipe = from_dict(TrainConfig, apply_overrides(RECIPE, args.overrides), where="recipe")
    torch.manual_seed(recipe.seed)
    before = zero_shot_itc(create_model(model_config(args.model)), test)
    for folder in ("model", "model.checkpoints"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    train_started = time.time()
    summary = run_pretrain(model_config(args.model), recipe, shards, workdir / "model", workdir / "model.checkpoints")
    train_seconds = time.time() - train_started
    after = zero_shot_itc(load_model_dir(workdir / "model"), test)

    window = max(1, len(summary["history"]) // 10)
    lines = [
        f"shapes world: {args.num_images} images; {len(test)} retrieval test images "
        f"({held_out} never in the image-text training split), {sum(len(s['meta']['captions']) for s in test)} "
        f"captions; data prepared in {prepared:.0f} s",
        f"pre-training {args.model}: {recipe.steps} steps, batch {recipe.batch_size} image-text pairs + "
        f"{recipe.region_batch_size} region texts, lr {recipe.optim.lr}, {train_seconds:.0f} s on CPU",
        "",
        "| loss | first 10% of steps | last 10% | change |",
        "| --- | --- | --- | --- |",
    ]
    for name, (start, end) in loss_change(summary["history"], window).items():
        lines.append(f"| {name} | {start:.3f} | {end:.3f} | {100 * (end - start) / start:+.0f}% |")
    lines += [
        "",
        "| zero-shot ITC retrieval (test split) | chance | untrained | pre-trained | pre-trained / chance |",
        "| --- | --- | --- | --- | --- |",
    ]
    for way, label in (("txt", "image → text R@1"), ("img", "text → image R@1")):
        chance = after[f"{way}_r1_chance"]
        lines.append(
            f"| {label} | {chance:.3f} | {before[f'{way}_r1']:.3f} | {after[f'{way}_r1']:.3f} | "
            f"{after[f'{way}_r1'] / chance:.1f}x |"
        )
    for way, label in (("txt", "image → text R@5"), ("img", "text → image R@5")):
        chance = 5 * after[f"{way}_r1_chance"]  # nearly: five draws instead of one
        lines.append(
            f"| {label} | ~{chance:.3f} | {before[f'{way}_r5']:.3f} | {after[f'{way}_r5']:.3f} | "
            f"~{after[f'{way}_r5'] / chance:.1f}x |"
        )
    printed = "\n".join(lines)
    print(printed)
    print(json.dumps({"before": before, "after": after, "train_seconds": round(train_seconds, 1)}))
    if not args.no_record:
        append_entry("pre-training on the shapes world: losses and zero-shot ITC retrieval", command_line(), printed)


if __name__ == "__main__":
    main()
