"""`make run`: the whole pipeline, locally, through kfp.local on a generated shapes-world dataset.

Everything lands in runs/<timestamp>/: the synthetic source data, the shards (data/, the run's
data root), the KFP pipeline root (the shards' manifest, models, metrics of every task), the published release, the full log (pipeline.log) and
summary.json. The terminal shows one line per finished step, then a table of each task's
headline metric against what a model that learned nothing scores, and the pages to open.

``--model vlmo_tiny``, ``--model cclm_tiny`` or ``--model xvlm_tiny`` runs the same pipeline with the other model
families, each with tasks it supports; CCLM first gets a small sentencepiece tokenizer trained
on the generated English/shapes-speak sentence pairs (no XLM-R vocabulary ships offline).
"""

import argparse
import builtins
import contextlib
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import kfp.local

from pipelines.full_pretrain_finetune import DEFAULT_TASKS, full_pretrain_finetune
from x2vlm_core.data.shard_location import follow_manifest
from x2vlm_core.data.synthetic import PARALLEL_FILE, generate_shapes_world
from x2vlm_core.evaluation.headline import headline_table
from x2vlm_core.text.xlmr import train_sentencepiece

# Each family's tiny model and the tasks its local run fine-tunes by default.
MODEL_TASKS = {
    "x2vlm_tiny": DEFAULT_TASKS,
    "vlmo_tiny": ["retrieval", "nlvr2"],
    "cclm_tiny": ["retrieval", "xvnli"],
    "xvlm_tiny": ["retrieval", "grounding", "vqa", "nlvr2", "captioning"],
}

# Many shapes-world images show the same shapes ("a red square"), so the captions ITC finds most
# similar are mostly true matches: with official hard negatives ITM learned a contradiction and
# stayed at its prior on one seed of three, leaving the ITM re-ranking at chance (docs/benchmarks.md).
LOCAL_ITM = ["train.itm_negatives=random"]
# Fine-tuning steps of 32 where a task needs its own count; the two branches run side by side, one
# core each. Grounding's box head learns from the fine-tune almost alone (120 pre-training steps moved
# the region box losses by under 10%): acc@0.5 0.21 after 1200 steps of 16, 0.26 after 600 of 32,
# 0.30 after 1200 of 32. Retrieval with random ITM negatives reached 12x chance after 300.
LOCAL_TASK_STEPS = {"retrieval": 300, "grounding": 1200}
DEFAULT_FINETUNE_STEPS = 600


def _write_lineage_page(run_dir: Path) -> Path | None:
    from x2vlm_core.errors import X2VLMError
    from x2vlm_core.release.lineage import read_run_lineage, render_html

    try:
        page = run_dir / "lineage.html"
        page.write_text(render_html(read_run_lineage(run_dir)))
        return page
    except X2VLMError:
        return None


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
        # The Dataset artifacts: manifests of the shards under data/ (shard_location.follow_manifest).
        "shards": [str(p) for p in _find(root, "*/prepare-data/shards")],
        "shard_data": [follow_manifest(str(p)) for p in _find(root, "*/prepare-data/shards")],
        "pretrained_model": [str(p) for p in _find(root, "*/pretrain/model")],
        "finetuned_models": [str(p) for p in _find(root, "*/for-loop-*/finetune/model")],
        "metrics": metrics,
        # The pre-trained model's release, and each task model's (its lineage names a parent).
        "published": [
            str(p.parent)
            for p in _find(run_dir / "releases", "*/*/manifest.json")
            if "parent" not in json.loads((p.parent / "lineage.json").read_text())
        ],
        "task_releases": [
            str(p.parent)
            for p in _find(run_dir / "releases", "*/*/manifest.json")
            if "parent" in json.loads((p.parent / "lineage.json").read_text())
        ],
        "run_status": [json.loads(p.read_text())["state"] for p in _find(run_dir / "releases", "run-status/*.json")],
    }


def report_progress(pipeline_root: Path, started: float, stop: threading.Event, out) -> None:
    """One line per finished step (its executor_output.json appears), until ``stop`` is set."""
    seen: set[Path] = set()
    while True:
        done = stop.wait(1.0)
        for path in sorted(pipeline_root.glob("*/**/executor_output.json")):
            if path not in seen:
                seen.add(path)
                step = path.parent.relative_to(next(pipeline_root.iterdir()))
                print(f"  done  {step}  ({time.time() - started:5.0f} s)", file=out, flush=True)
        if done:
            return


def pages_to_open(run_dir: Path, summary: dict) -> list[str]:
    # evaluate writes its report.html beside the metrics it logs (metrics.details/).
    reports = [
        f"  {task}: {Path(values['file']).parent / 'metrics.details' / 'report.html'}"
        for task, values in sorted(summary["metrics"].items())
    ]
    return [
        "open:",
        *reports,
        f"  lineage: {run_dir / 'lineage.html'}",
        *[f"  release: {path}" for path in summary["published"]],
        f"  all results: {run_dir / 'summary.json'}",
    ]


def subprocess_runner(run_dir: Path) -> kfp.local.SubprocessRunner:
    return kfp.local.SubprocessRunner(use_venv=False)


def main(description: str = __doc__.splitlines()[0], runner_for: Callable[[Path], object] = subprocess_runner) -> int:
    """The run; ``runner_for(run_dir)`` gives the kfp.local runner (make run-containers passes its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs-dir", default="runs")
    # The local recipe, sized to learn within 5 minutes on 2 CPU cores (docs/benchmarks.md, "make run
    # learns"). 320 images: 960 made no grounding gain for the same steps and a harder retrieval test.
    parser.add_argument("--num-images", type=int, default=320)
    parser.add_argument("--pretrain-steps", type=int, default=60)
    parser.add_argument(
        "--finetune-steps",
        type=int,
        help=f"fine-tuning steps of every task (default: {LOCAL_TASK_STEPS}, {DEFAULT_FINETUNE_STEPS} for the others)",
    )
    parser.add_argument("--model", choices=sorted(MODEL_TASKS), default="x2vlm_tiny")
    parser.add_argument("--tasks", nargs="+", help="default: the model's tasks in MODEL_TASKS")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.time()
    plain_print = builtins.print
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
    pipeline_root = run_dir / "pipeline_root"
    pipeline_root.mkdir()
    # Expected locally, said once per step: cluster-only settings (resources, display names) are
    # ignored, and the steps run in this Python rather than in their images.
    warnings.filterwarnings("ignore", message=r".*have no effect in the current local runner")
    warnings.filterwarnings("ignore", message=r".*custom or non-Python base image")
    kfp.local.init(runner=runner_for(run_dir), pipeline_root=str(pipeline_root))
    print(f"running the pipeline (full log: {run_dir / 'pipeline.log'})", flush=True)
    stop = threading.Event()
    watcher = threading.Thread(target=report_progress, args=(pipeline_root, started, stop, sys.stdout), daemon=True)
    watcher.start()
    try:
        with open(run_dir / "pipeline.log", "w") as log, contextlib.redirect_stdout(log):
            full_pretrain_finetune(
                sources=str(run_dir / "synthetic" / "sources.yaml"),
                model_preset=args.model,
                pretrain_steps=args.pretrain_steps,
                pretrain_batch_size=16,
                tasks=args.tasks or MODEL_TASKS[args.model],
                finetune_steps=args.finetune_steps or DEFAULT_FINETUNE_STEPS,
                # 32 a step: per sample, a third cheaper than 16 on this tiny model (per-step overhead).
                finetune_batch_size=32,
                shard_size=64,
                max_image_side=64,
                output_root=str(run_dir / "releases"),
                data_root=str(run_dir / "data"),
                model_name=f"{args.model.replace('_', '-')}-shapes",
                pretrain_overrides=[
                    *model_overrides,
                    f"train.seed={args.seed}",
                    # lr 1e-3: from scratch, the tiny model needs it (at 3e-4 ITM stayed at its prior and the
                    # ITM re-ranking left retrieval at exactly chance).
                    "train.optim.lr=0.001",
                    "train.optim.warmup_steps=20",
                    # Shapes are named by their flat colour: RandAugment's colour operations make the picture
                    # contradict its text; a caption names every shape, so crops keep at least half the image.
                    "train.augment.randaug_ops=0",
                    "train.augment.crop_scale=[0.5, 1.0]",
                    # 8 shapes-world images hold ~20 region texts: no repeats
                    "train.region_batch_images=8",
                    "train.region_batch_size=16",
                    *LOCAL_ITM,
                ],
                finetune_overrides=[
                    f"train.seed={args.seed}",
                    "train.optim.lr=0.001",
                    "train.optim.warmup_steps=40",
                    *LOCAL_ITM,
                ],
                finetune_task_overrides={}
                if args.finetune_steps
                else {task: [f"train.steps={steps}"] for task, steps in LOCAL_TASK_STEPS.items()},
            )
    except Exception:
        stop.set()
        watcher.join()
        tail = (run_dir / "pipeline.log").read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"\nthe pipeline failed; the full log is {run_dir / 'pipeline.log'}", file=sys.stderr)
        raise
    stop.set()
    watcher.join()
    # kfp.local indents a step's prints by swapping builtins.print; two branches running side by side
    # restore each other's swap out of order and leave it indented.
    builtins.print = plain_print
    summary = summarize(run_dir)
    summary["seconds"] = round(time.time() - started, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    lineage_page = _write_lineage_page(run_dir)
    print(
        f"\n=== X²-VLM local pipeline finished in {summary['seconds']:.0f} s: {', '.join(summary['run_status'])} ===\n"
    )
    print(headline_table({task: values for task, values in summary["metrics"].items()}))
    print()
    print("\n".join(pages_to_open(run_dir, summary)))
    if lineage_page is None:
        print(f"(the lineage page could not be drawn; see `x2vlm lineage {run_dir}`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
