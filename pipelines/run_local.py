"""`make run`: the whole pipeline, locally, through kfp.local on a generated shapes-world dataset.

Everything lands in runs/<timestamp>/: the synthetic source data, the KFP pipeline root
(shards, models, metrics of every task) and the published release.

``--model vlmo_tiny`` or ``--model cclm_tiny`` runs the same pipeline with the other model
families, each with tasks it supports; CCLM first gets a small sentencepiece tokenizer trained
on the generated English/shapes-speak sentence pairs (no XLM-R vocabulary ships offline).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import kfp.local

from pipelines.full_pretrain_finetune import DEFAULT_TASKS, full_pretrain_finetune
from x2vlm_core.data.synthetic import PARALLEL_FILE, generate_shapes_world
from x2vlm_core.text.xlmr import train_sentencepiece

# Each family's tiny model and the tasks its local run fine-tunes by default.
MODEL_TASKS = {"x2vlm_tiny": DEFAULT_TASKS, "vlmo_tiny": ["retrieval", "nlvr2"], "cclm_tiny": ["retrieval", "xvnli"]}


def _find(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def summarize(run_dir: Path) -> dict:
    root = run_dir / "pipeline_root"
    metrics = {}
    for path in _find(root, "*/for-loop-*/evaluate/metrics"):
        data = json.loads(path.read_text())
        metrics[data["task"]] = {"file": str(path), **data["metrics"]}
    return {
        "run_dir": str(run_dir),
        "synthetic_data": str(run_dir / "synthetic"),
        "shards": [str(p) for p in _find(root, "*/prepare-data/shards")],
        "pretrained_model": [str(p) for p in _find(root, "*/pretrain/model")],
        "finetuned_models": [str(p) for p in _find(root, "*/for-loop-*/finetune/model")],
        "metrics": metrics,
        "published": [str(p.parent) for p in _find(run_dir / "releases", "*/*/manifest.json")],
        "run_status": [json.loads(p.read_text())["state"] for p in _find(run_dir / "releases", "run-status/*.json")],
    }


def parser(description: str = __doc__.splitlines()[0]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--num-images", type=int, default=320)
    parser.add_argument("--pretrain-steps", type=int, default=120)
    parser.add_argument("--finetune-steps", type=int, default=60)
    parser.add_argument("--model", choices=sorted(MODEL_TASKS), default="x2vlm_tiny")
    parser.add_argument("--tasks", nargs="+", help="default: the model's tasks in MODEL_TASKS")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace, runner_for: Callable[[Path], object]) -> dict:
    """Generate the data, run the pipeline under ``runner_for(run_dir)``; return the run's summary."""
    started = time.time()
    run_dir = (Path(args.runs_dir) / time.strftime("%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True)
    manifest = generate_shapes_world(run_dir / "synthetic", num_images=args.num_images, seed=args.seed)
    print(f"generated shapes world: {json.dumps(manifest['datasets'])}", flush=True)
    model_overrides = []
    if args.model.startswith("cclm"):
        pairs = (run_dir / "synthetic" / PARALLEL_FILE).read_text().splitlines()
        texts = [text for line in pairs for text in line.split("\t")[1:]]
        tokenizer = train_sentencepiece(texts, run_dir / "tokenizer", vocab_size=500, seed=args.seed)
        model_overrides = [f"model.tokenizer={tokenizer}"]

    # kfp.local runs the fine-tune branches side by side; one math thread each avoids
    # oversubscribing a small machine (two 2-thread trainers on 2 cores ran 20x slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    kfp.local.init(runner=runner_for(run_dir), pipeline_root=str(run_dir / "pipeline_root"))
    full_pretrain_finetune(
        sources=str(run_dir / "synthetic" / "sources.yaml"),
        model_preset=args.model,
        pretrain_steps=args.pretrain_steps,
        pretrain_batch_size=16,
        tasks=args.tasks or MODEL_TASKS[args.model],
        finetune_steps=args.finetune_steps,
        finetune_batch_size=16,
        shard_size=64,
        max_image_side=64,
        output_root=str(run_dir / "releases"),
        model_name=f"{args.model.replace('_', '-')}-shapes",
        pretrain_overrides=[*model_overrides, "train.optim.lr=0.0005", "train.optim.warmup_steps=10", "train.region_batch_images=8",
                           "train.region_batch_size=16"],  # 8 shapes-world images hold ~20 region texts: no repeats
        finetune_overrides=["train.optim.lr=0.0005", "train.optim.warmup_steps=5"],
    )
    summary = summarize(run_dir)
    summary["seconds"] = round(time.time() - started, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> int:
    summary = run(parser().parse_args(), lambda run_dir: kfp.local.SubprocessRunner(use_venv=False))
    print("\n=== X²-VLM local pipeline finished ===")
    print(json.dumps(summary, indent=2))
    print(f"\nartifact graph of this run: x2vlm lineage {summary['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
