"""Zero-shot cross-lingual transfer through the platform's stages: cclm_tiny on the shapes world's IGLUE-style sets.

    .venv/bin/python benchmarks/cclm_iglue.py --workdir runs/cclm-iglue

The same path as ``x2vlm train-tokenizer``, ``pretrain``, ``finetune`` and ``evaluate``: the shapes
world (its XVNLI and xFlickr&CO sets in their original formats: English train, test in English
and in "xx", shapes-speak, which shares no word with English) → shards → a sentencepiece
tokenizer on the en + xx texts → cclm_tiny pre-trained on images with en + xx captions and on
en/xx sentence pairs → fine-tuned on the English training split of each task → evaluated on
both test languages. Then the few-shot protocol: the English XVNLI model continues on
``--shots`` xx examples of the few-shot split, and is evaluated again. Prints each language's
numbers beside chance. Steps already done in ``--workdir`` are reused.
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from record import append_entry, command_line
from shapes_pretrain import prepare

from x2vlm_core.config_io import from_dict
from x2vlm_core.data.shards import read_index
from x2vlm_core.evaluation.run import run_evaluation
from x2vlm_core.families import model_config
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.finetune import run_finetune
from x2vlm_core.train.pretrain import run_pretrain
from x2vlm_core.train.tokenizer import train_tokenizer

# As benchmarks/shapes_finetune.py: lr 1e-3, far above the official recipes, because the tiny model
# starts from scratch. Regions are left out of pre-training: the transfer under test is between
# caption languages, and the region stream would double the CPU time.
PRETRAIN = {"batch_size": 32, "optim": {"lr": 1e-3, "warmup_steps": 40}, "data": {"region_text": {"datasets": []}}}
FINETUNE = {"batch_size": 32, "optim": {"lr": 1e-3, "warmup_steps": 30}}
FEW_SHOT = {"batch_size": 8, "optim": {"lr": 2e-4, "warmup_steps": 5}}
COMMON = {"log_every": 50, "shuffle_buffer": 256, "tensorboard": False}
# The task, the dataset it reads, the metrics printed, and the evaluation options.
TASKS = {
    "retrieval": ("xflickrco", ["img_r1", "txt_r1", "r_mean"], ["k_test=32"]),
    "xvnli": ("xvnli", ["accuracy"], []),
}


def chance(task: str, dataset: str, shards: Path) -> dict[str, float]:
    """What guessing scores: accuracy 1/3; R@K with random rankings of n images, 2 captions each."""
    if task == "xvnli":
        return {"accuracy": 1 / 3}
    images = read_index(shards)["datasets"][dataset]["test"]["count"] // 2  # one record per image and language
    texts = 2 * images
    img = {k: min(1.0, k / images) for k in (1, 5, 10)}  # text → image: the one image in the top K
    txt = {k: 1 - math.comb(texts - 2, k) / math.comb(texts, k) for k in (1, 5, 10)}  # either caption in the top K
    return {"img_r1": img[1], "txt_r1": txt[1], "r_mean": (sum(img.values()) + sum(txt.values())) / 6}


def row(label: str, metrics: dict[str, float], names: list[str], languages: tuple[str, ...]) -> str:
    cells = [f"{metrics[f'test_{language}_{name}']:.3f}" for name in names for language in languages]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/cclm-iglue")
    parser.add_argument("--num-images", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--shots", type=int, default=8, help="xx examples per language for the few-shot run")
    parser.add_argument("--few-shot-steps", type=int, default=40)
    parser.add_argument("--no-record", action="store_true", help="do not append the result to docs/benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    shards = prepare(workdir, args.num_images, args.seed)
    timings: dict[str, float] = {"data_s": round(time.time() - started, 1)}

    tokenizer, pretrained = workdir / "tokenizer", workdir / "pretrained"
    if not (tokenizer / "sentencepiece.bpe.model").is_file():
        train_tokenizer(shards, tokenizer, vocab_size=500, datasets=[])
    if not (pretrained / "model.safetensors").is_file():
        t = time.time()
        model_cfg = model_config("cclm_tiny", tokenizer=str(tokenizer))
        cfg = from_dict(TrainConfig, {**PRETRAIN, **COMMON, "steps": args.pretrain_steps})
        summary = run_pretrain(model_cfg, cfg, shards, pretrained, workdir / "pretrained.checkpoints")
        timings["pretrain_s"] = round(time.time() - t, 1)
        print(json.dumps({"pretrain_final": summary["final"]}), flush=True)

    results: dict[str, dict[str, Any]] = {}
    for task, (dataset, names, options) in TASKS.items():
        t = time.time()
        out = workdir / "finetuned" / task
        cfg = from_dict(TrainConfig, {**FINETUNE, **COMMON, "steps": args.finetune_steps})
        run_finetune(task, pretrained, cfg, shards, out, f"{out}.checkpoints", dataset=dataset)
        metrics = run_evaluation(task, out, shards, workdir / "eval" / task, options, dataset=dataset)
        results[task] = {"zero_shot": metrics, "chance": chance(task, dataset, shards)}
        timings[f"{task}_s"] = round(time.time() - t, 1)
        print(json.dumps({task: {k: v for k, v in metrics.items() if k.startswith("test_")}}), flush=True)

    t = time.time()
    few = workdir / "few_shot" / "xvnli"
    cfg = from_dict(
        TrainConfig,
        {**FEW_SHOT, **COMMON, "steps": args.few_shot_steps, "batch_size": min(FEW_SHOT["batch_size"], args.shots)},
    )
    run_finetune(
        "xvnli",
        workdir / "finetuned" / "xvnli",
        cfg,
        shards,
        few,
        f"{few}.checkpoints",
        few_shot=args.shots,
        languages=["xx"],
    )
    results["xvnli"]["few_shot"] = run_evaluation("xvnli", few, shards, workdir / "eval" / "xvnli-few-shot")
    timings["few_shot_s"] = round(time.time() - t, 1)
    timings["total_s"] = round(time.time() - started, 1)
    (workdir / "summary.json").write_text(json.dumps({"timings": timings, "results": results}, indent=2))

    index = read_index(shards)["datasets"]
    lines = [
        f"test sets: xflickrco {index['xflickrco']['test']['count'] // 2} images x 2 captions per language, "
        f"xvnli {index['xvnli']['test']['count'] // 2} hypotheses per language (3 classes)"
    ]
    for task, (_, names, _) in TASKS.items():
        header = " | ".join(f"{name} {language}" for name in names for language in ("en", "xx"))
        lines += ["", f"| {task} | {header} |", "| --- |" + " --- |" * (2 * len(names))]
        lines.append(
            row(
                "chance",
                {
                    f"test_{language}_{name}": value
                    for name, value in results[task]["chance"].items()
                    for language in ("en", "xx")
                },
                names,
                ("en", "xx"),
            )
        )
        lines.append(
            row(f"zero-shot ({args.finetune_steps} en steps)", results[task]["zero_shot"], names, ("en", "xx"))
        )
        if "few_shot" in results[task]:
            lines.append(
                row(
                    f"+ {args.shots}-shot xx ({args.few_shot_steps} steps)",
                    results[task]["few_shot"],
                    names,
                    ("en", "xx"),
                )
            )
    lines.append(json.dumps(timings))
    printed = "\n".join(lines)
    print("\n" + printed)
    if not args.no_record:
        append_entry(
            f"CCLM zero-shot and few-shot through the stages: {args.pretrain_steps}-step CPU pre-train of "
            "cclm_tiny, XVNLI and xFlickr&CO (shapes world)",
            command_line(),
            printed,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
