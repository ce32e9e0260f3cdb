"""The ``x2vlm`` command: every pipeline stage, runnable alone.

x2vlm generate-synthetic --output data/shapes
x2vlm import-official x2vlm_base_4m.th --output models/x2vlm-base-384 --image-res 384
x2vlm prepare-data --sources data/shapes/sources.yaml --output shards
x2vlm pretrain --shards shards --output out/pretrained --model x2vlm_tiny --set train.steps=50
x2vlm train-tokenizer --shards shards --output out/tokenizer --vocab-size 500
x2vlm pretrain --shards shards --output out/cclm --model cclm_tiny --set model.tokenizer=out/tokenizer
x2vlm finetune --task retrieval --pretrained out/pretrained --shards shards --output out/retrieval
x2vlm evaluate --task retrieval --model out/retrieval --shards shards --output out/eval-retrieval
x2vlm finetune --task xvnli --pretrained out/cclm --shards shards --output out/xvnli-en
x2vlm finetune --task xvnli --pretrained out/xvnli-en --shards shards --output out/xvnli-xx --few-shot 8
x2vlm evaluate --task retrieval --dataset xflickrco --model out/xflickrco-en --shards shards --output out/eval
x2vlm publish --model out/pretrained --metrics out/eval-retrieval/metrics.json --destination releases
x2vlm fetch-release releases/x2vlm/v1 --output fetched/x2vlm-v1
x2vlm lineage runs/20250101-120000 --html lineage.html
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError, X2VLMError
from x2vlm_core.run_config import load_run_config

# The fine-tuning tasks (x2vlm_core.tasks.TASKS), listed here so `--help` needs no torch import.
TASK_NAMES = (
    "retrieval",
    "grounding",
    "grounding_weakly",
    "vqa",
    "nlvr2",
    "captioning",
    "video_retrieval",
    "video_qa",
    "xvnli",
)


def _add_run_config_args(p: argparse.ArgumentParser, with_model: bool) -> None:
    p.add_argument("--config", help="YAML with `model:` (preset name or {preset, ...overrides}) and `train:` keys")
    if with_model:
        p.add_argument(
            "--model",
            dest="preset",
            help="model preset, e.g. x2vlm_tiny, x2vlm_base, x2vlm_large (overrides the config's)",
        )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=100 --set model.image_res=96",
    )


def _add_training_io_args(p: argparse.ArgumentParser, shards_required: bool = True) -> None:
    p.add_argument(
        "--shards",
        required=shards_required,
        help="prepare-data output folder or gs:// prefix (holds index.json)"
        + ("" if shards_required else "; default: the config's train.data.shards"),
    )
    p.add_argument("--output", required=True, help="model folder to write")
    p.add_argument(
        "--checkpoint-dir",
        help="DeepSpeed checkpoints, resumed from if present (default: OUTPUT.checkpoints); "
        "with a gs:// --checkpoint-root, the local folder they are staged in",
    )
    p.add_argument(
        "--checkpoint-root",
        help="durable checkpoint root, gs:// or a path (e.g. a PVC): checkpoints go to "
        "ROOT/RUN_ID/STEP (STEP: pretrain, finetune-TASK) and a rerun resumes there",
    )
    p.add_argument("--run-id", help="the pipeline run id that scopes --checkpoint-root (the same for every retry)")


def build_parser() -> argparse.ArgumentParser:
    from x2vlm_core import __version__

    parser = argparse.ArgumentParser(prog="x2vlm", description="X²-VLM platform stages")
    parser.add_argument(
        "--log-level", help="log level of every logger (default: INFO; prepare-data: WARNING and its own progress)"
    )
    parser.add_argument("--version", action="version", version=f"x2vlm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "generate-synthetic", help="write the shapes-world dataset (images and videos) in the real dataset formats"
    )
    p.add_argument("--output", required=True)
    p.add_argument("--num-images", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=64)

    p = sub.add_parser(
        "import-official",
        help="an official X²-VLM, X-VLM, VLMo or CCLM checkpoint → our model folder",
        description="Read an official checkpoint safely, map its saved config (or --config) onto "
        "ours, printing each setting, load every weight strictly and write our model "
        "folder, which finetune --pretrained and pretrain --init take as it is.",
    )
    p.add_argument("checkpoint", help="official checkpoint file (.th, .pt, .ckpt)")
    p.add_argument("--output", required=True, help="model folder to write (new or empty)")
    p.add_argument(
        "--image-res",
        type=int,
        help="image size to build the model at (default: the checkpoint's); "
        "position tables are resized as the official loader does",
    )
    p.add_argument(
        "--config", help="official YAML the checkpoint was trained with, for a file saved without its config"
    )
    p.add_argument(
        "--text-encoder",
        help="X²-VLM, X-VLM, CCLM: the folder the config's text_encoder names (BERT config.json and "
        "vocab.txt; CCLM: XLM-R config.json and sentencepiece.bpe.model), when it is not at that path",
    )
    p.add_argument("--vision-config", help="X²-VLM, X-VLM, CCLM: the JSON file the config's vision_config names")
    p.add_argument("--text-config", help="X-VLM: the BERT config JSON the config's text_config names")
    p.add_argument(
        "--cross-encoder", help="X²-VLM-based CCLM: the folder (BERT config.json) the config's cross_encoder names"
    )
    p.add_argument("--tokenizer", help="VLMo: the folder (with vocab.txt) the config's tokenizer names")

    p = sub.add_parser("prepare-data", help="Apache Beam job: sources → webdataset shards + index/stats/rejects")
    p.add_argument("--sources", required=True, help="sources YAML (see README)")
    p.add_argument("--output", required=True, help="output folder or gs://BUCKET/PREFIX")
    p.add_argument("--shard-size", type=int, default=64)
    p.add_argument("--max-image-side", type=int, default=256)
    p.add_argument(
        "--num-frames", type=int, default=3, help="frames sampled from each video (default: 3, X²-VLM's frame_len)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a complete output (one with index.json); its old files go once the new index is written",
    )
    p.add_argument(
        "--allow-empty-sources",
        action="store_true",
        help="succeed even when a source entry writes no sample (by default that fails, naming its top reject reason)",
    )
    p.add_argument("--verbose", action="store_true", help="log at INFO, Beam's own messages included")
    p.add_argument("beam_args", nargs="*", help="Beam pipeline options after --, e.g. -- --runner=DataflowRunner")

    p = sub.add_parser("pretrain", help="pre-train with ITC + ITM + MLM + box losses (DeepSpeed)")
    _add_training_io_args(p, shards_required=False)
    p.add_argument(
        "--init",
        help="model folder or checkpoint (.th/.pt/.safetensors) to start from; without "
        "--model, a model folder (e.g. from import-official) is also the model, as it is",
    )
    _add_run_config_args(p, with_model=True)

    p = sub.add_parser("train-tokenizer", help="train a CCLM sentencepiece tokenizer on prepared shards' texts")
    p.add_argument("--shards", required=True, help="prepare-data output folder or gs:// prefix")
    p.add_argument("--output", required=True, help="tokenizer folder to write (use it as model.tokenizer)")
    p.add_argument(
        "--vocab-size",
        type=int,
        default=500,
        help="most sentencepiece pieces (cclm_tiny's vocabulary holds 512 entries: pieces + 2)",
    )
    p.add_argument(
        "--dataset",
        dest="datasets",
        action="append",
        default=[],
        help="dataset whose texts to read (repeatable; default: pretrain_multilingual, pretrain_parallel_text)",
    )

    p = sub.add_parser(
        "finetune",
        help="fine-tune a pre-trained model folder on one task",
        description="Fine-tune on the dataset's train split (zero-shot cross-lingual transfer: "
        "train in English, evaluate every language), or, with --few-shot N, continue "
        "from a fine-tuned English task model on N examples per target language of the "
        "dataset's few_shot split (IGLUE's few-shot files, prepared with split: few_shot).",
    )
    p.add_argument("--task", required=True, help=f"one of: {', '.join(TASK_NAMES)}")
    p.add_argument(
        "--pretrained",
        required=True,
        help="model folder written by pretrain (with --few-shot: by finetune of this task)",
    )
    p.add_argument(
        "--dataset",
        help="dataset in the shards to train on instead of the task's own, e.g. xflickrco "
        "(retrieval), xgqa (vqa), marvl (nlvr2)",
    )
    p.add_argument(
        "--few-shot",
        type=int,
        default=0,
        metavar="N",
        help="train on N examples per language drawn (with train.seed) from the dataset's few_shot split",
    )
    p.add_argument(
        "--languages",
        nargs="+",
        metavar="LANG",
        help="the few-shot languages (default: every language of the few_shot split but English)",
    )
    _add_training_io_args(p)
    _add_run_config_args(p, with_model=False)

    p = sub.add_parser("evaluate", help="evaluate a model folder on a task's evaluation splits")
    p.add_argument("--task", required=True, help=f"one of: {', '.join(TASK_NAMES)}")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--shards", required=True)
    p.add_argument("--output", required=True, help="folder for metrics.json, predictions.jsonl, report.html")
    p.add_argument(
        "--dataset",
        help="dataset in the shards to evaluate on instead of the task's own, e.g. xflickrco; "
        "multilingual data is scored per language, plus the non-English average",
    )
    p.add_argument(
        "--split",
        dest="splits",
        action="append",
        metavar="SPLIT",
        help="split to evaluate (repeatable; default: the task's evaluation splits that exist)",
    )
    p.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluation option of the task, e.g. --set k_test=128 (retrieval, vqa), --set num_beams=5",
    )

    p = sub.add_parser("publish", help="write an immutable release (local folder or gs://) with manifest")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--metrics", action="append", default=[], help="metrics.json written by evaluate (repeatable)")
    p.add_argument("--destination", default="releases", help="local folder or gs://BUCKET/PREFIX (default: ./releases)")
    p.add_argument("--name", default="x2vlm")
    p.add_argument("--version", help="release version (default: vYYYYMMDD-HHMMSS, UTC)")
    p.add_argument("--shards", help="prepare-data output the model was trained on, described in lineage and model card")
    p.add_argument(
        "--max-shard-mb",
        type=int,
        default=2048,
        help="weights larger than this are split into safetensors shards + index (default: 2048)",
    )

    p = sub.add_parser("lineage", help="the artifact graph of a local (kfp.local) run, as text and an HTML picture")
    p.add_argument("run_dir", help="a local run folder, e.g. runs/<timestamp> from `make run`")
    p.add_argument("--html", help="HTML/SVG picture to write (default: RUN_DIR/lineage.html)")

    p = sub.add_parser("fetch-release", help="download a release, verify it against its manifest, load the model")
    p.add_argument("uri", help="release folder or gs:// URI (a version, or the model folder to follow LATEST)")
    p.add_argument("--output", required=True, help="new or empty local folder")
    return parser


def _read_metrics(paths: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"metrics file not found: {path}")
        data = json.loads(Path(path).read_text())
        out[data["task"]] = data["metrics"]
    return out


def _where_training_runs() -> dict[str, Any]:
    """The world size (torchrun's, else one process) and device the run-check checks against."""
    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return {
        "world_size": world_size,
        "gpus_per_node": int(os.environ.get("LOCAL_WORLD_SIZE", world_size)),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def _config_preset(path: str | None) -> str | None:
    """The preset a run config YAML names (``model: NAME`` or ``model: {preset: NAME}``)."""
    if not path:
        return None
    from x2vlm_core.config_io import load_yaml

    model = load_yaml(path).get("model")
    return model if isinstance(model, str) else (model or {}).get("preset")


def _init_folder_model(args: argparse.Namespace) -> Any:
    """With no preset named, the config of the model folder given to --init: pre-training continues that model."""
    if args.preset or _config_preset(args.config) or not args.init or not Path(args.init).is_dir():
        return None
    from x2vlm_core.release.model_folder import read_model_config

    return read_model_config(args.init)


def _checkpoints(args: argparse.Namespace, step_name: str) -> tuple[str, str | None]:
    """Where DeepSpeed writes, and the gs:// prefix that is uploaded to and resumed from (or None)."""
    from x2vlm_core import storage

    staging = args.checkpoint_dir or args.output.rstrip("/") + ".checkpoints"
    if args.run_id and not args.checkpoint_root:
        raise ConfigError("--run-id scopes --checkpoint-root; give both, or neither")
    if not args.checkpoint_root:
        return staging, None
    if not args.run_id:
        raise ConfigError("--checkpoint-root needs --run-id (the pipeline run id, the same for every retry)")
    from x2vlm_core.train.durable import checkpoint_location

    location = checkpoint_location(args.checkpoint_root, args.run_id, step_name)
    if storage.is_gcs(location):
        return staging, location
    if args.checkpoint_dir:
        raise ConfigError("--checkpoint-dir and a local --checkpoint-root both say where checkpoints go; give one")
    return location, None


def _finetune_step_name(args: argparse.Namespace) -> str:
    return f"finetune-{args.task}" + (f"-{args.few_shot}-shot" if args.few_shot else "")


def run(args: argparse.Namespace) -> Any:
    if args.command == "generate-synthetic":
        from x2vlm_core.data.synthetic import generate_shapes_world

        return generate_shapes_world(
            args.output, num_images=args.num_images, seed=args.seed, image_size=args.image_size
        )
    if args.command == "import-official":
        from x2vlm_core.release.import_official import import_official

        supplied = {
            key: path
            for key, path in (
                ("text_encoder", args.text_encoder),
                ("vision_config", args.vision_config),
                ("text_config", args.text_config),
                ("cross_encoder", args.cross_encoder),
                ("tokenizer", args.tokenizer),
            )
            if path
        }
        return import_official(
            args.checkpoint, args.output, image_res=args.image_res, official_yaml=args.config, supplied=supplied
        )
    if args.command == "prepare-data":
        try:
            from x2vlm_core.dataprep.beam_job import run_prepare_data
        except ImportError as exc:
            raise ConfigError(f"prepare-data needs Apache Beam: pip install 'x2vlm-platform[beam]' ({exc})") from None
        return run_prepare_data(
            args.sources,
            args.output,
            shard_size=args.shard_size,
            max_image_side=args.max_image_side,
            num_frames=args.num_frames,
            pipeline_args=args.beam_args,
            overwrite=args.overwrite,
            allow_empty_sources=args.allow_empty_sources,
        )
    if args.command == "pretrain":
        from x2vlm_core.run_checks import validate_run
        from x2vlm_core.train.pretrain import run_pretrain

        init_model = _init_folder_model(args)
        checkpoint_dir, checkpoint_uri = _checkpoints(args, "pretrain")
        validate_run(
            model_preset=args.preset or _config_preset(args.config),
            init_model=init_model,
            run_config=args.config,
            pretrain_overrides=args.overrides,
            checkpoint_root=args.checkpoint_root,
            **_where_training_runs(),
        )
        model_cfg, train_cfg = load_run_config(args.config, args.preset, args.overrides, base_model=init_model)
        return run_pretrain(
            model_cfg,
            train_cfg,
            args.shards,
            args.output,
            checkpoint_dir,
            init=args.init,
            checkpoint_uri=checkpoint_uri,
        )["final"]
    if args.command == "train-tokenizer":
        from x2vlm_core.train.tokenizer import train_tokenizer

        return train_tokenizer(args.shards, args.output, args.vocab_size, args.datasets)
    if args.command == "finetune":
        from x2vlm_core.run_checks import validate_run
        from x2vlm_core.tasks import get_task
        from x2vlm_core.train.finetune import run_finetune

        get_task(args.task)  # the command's own argument first, then everything else at once
        validate_run(
            tasks=[args.task],
            base_model=args.pretrained,
            run_config=args.config,
            finetune_overrides=args.overrides,
            shards=args.shards,
            dataset=args.dataset or "",
            few_shot=args.few_shot,
            checkpoint_root=args.checkpoint_root,
            **_where_training_runs(),
        )
        checkpoint_dir, checkpoint_uri = _checkpoints(args, _finetune_step_name(args))
        _, train_cfg = load_run_config(args.config, None, args.overrides, model_needed=False)
        return run_finetune(
            args.task,
            args.pretrained,
            train_cfg,
            args.shards,
            args.output,
            checkpoint_dir,
            dataset=args.dataset,
            few_shot=args.few_shot,
            languages=args.languages,
            checkpoint_uri=checkpoint_uri,
        )["final"]
    if args.command == "evaluate":
        from x2vlm_core.evaluation.run import run_evaluation

        return run_evaluation(
            args.task, args.model, args.shards, args.output, args.options, dataset=args.dataset, splits=args.splits
        )
    if args.command == "publish":
        from x2vlm_core.release.lineage import data_fingerprint
        from x2vlm_core.release.publish import publish_release

        lineage = {"training_data": data_fingerprint(args.shards)} if args.shards else {}
        return publish_release(
            args.model,
            args.destination,
            args.name,
            metrics=_read_metrics(args.metrics),
            lineage=lineage,
            version=args.version,
            max_shard_bytes=args.max_shard_mb * 1024**2,
        )
    if args.command == "lineage":
        from x2vlm_core.release.lineage import read_run_lineage, render_html, render_text

        graph = read_run_lineage(args.run_dir)
        html_path = Path(args.html or Path(args.run_dir) / "lineage.html")
        html_path.write_text(render_html(graph))
        print(render_text(graph))
        return {"artifacts": len(graph.artifacts), "links": len(graph.links), "html": str(html_path)}
    if args.command == "fetch-release":
        from x2vlm_core.release.fetch import fetch_release, load_release

        folder = fetch_release(args.uri, args.output)
        manifest = json.loads((folder / "manifest.json").read_text())
        model = load_release(folder)
        return {
            "release": f"{manifest['model_name']}/{manifest['version']}",
            "output": str(folder),
            "files": len(manifest["files"]),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    raise AssertionError(args.command)


# The job's own progress lines stay at INFO when everything else is quiet.
PROGRESS_LOGGER = "x2vlm_core.dataprep"


def configure_logging(args: argparse.Namespace) -> None:
    """INFO by default; prepare-data logs warnings and its own progress unless --verbose (Beam says ~80 lines a run)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet = args.command == "prepare-data" and not args.verbose and not args.log_level
    logging.getLogger().setLevel("WARNING" if quiet else (args.log_level or "INFO").upper())
    logging.getLogger(PROGRESS_LOGGER).setLevel("INFO" if quiet else logging.NOTSET)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        result = run(args)
    except X2VLMError as exc:
        print(f"x2vlm {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)  # 143 when SIGTERM stopped training
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
