"""Publishing a model as an immutable, versioned release folder.

``<root>/<model_name>/<version>/`` holds the weights, config, tokenizer, metrics,
lineage, a model card, and ``manifest.json`` (every file with size and sha256),
written last. The release is assembled in a hidden staging folder and renamed
into place, so a reader never sees a half-written version; ``LATEST`` moves
only after that.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from x2vlm_core.checkpoint import CONFIG, TOKENIZER, WEIGHTS, read_model_config
from x2vlm_core.errors import X2VLMError

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_card(name: str, version: str, config: Any, metrics: dict[str, dict[str, float]],
                lineage: dict[str, Any]) -> str:
    lines = [
        f"# {name} {version}",
        "",
        f"X²-VLM model `{config.name}`: BEiT-2 vision encoder ({config.vision.depth} blocks, width "
        f"{config.vision.width}), BERT text stack ({config.text.fusion_start_at} text + "
        f"{config.text.num_layers - config.text.fusion_start_at} fusion layers, width {config.text.hidden_size}), "
        f"image resolution {config.image_res}.",
        "",
        "## Data",
        "",
        f"Training data: {lineage.get('data', 'not recorded')}.",
        "",
        "## Metrics",
        "",
    ]
    if not metrics:
        lines.append("No task was evaluated.")
    for task, values in sorted(metrics.items()):
        lines.append(f"### {task}")
        lines.append("")
        lines.append("| metric | value |")
        lines.append("| --- | --- |")
        lines.extend(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(values.items()))
        lines.append("")
    lines += [
        "## Intended use and limits",
        "",
        "Vision-language retrieval, grounding and related tasks after fine-tuning. Metrics above hold only for "
        "the evaluation data named in the lineage; a model trained on synthetic data is for testing the platform.",
        "",
    ]
    return "\n".join(lines)


def publish_release(model_dir: str | Path, destination: str, model_name: str,
                    metrics: dict[str, dict[str, float]] | None = None, lineage: dict[str, Any] | None = None,
                    version: str | None = None) -> Path:
    """Write a release and return its folder. An existing version is never overwritten."""
    if destination.startswith("gs://"):
        raise X2VLMError("publishing to gs:// is not available in this version; publish to a local folder "
                         "and copy it with `gcloud storage cp -r`")
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS).is_file():
        raise X2VLMError(f"{model_dir} is not a model folder ({WEIGHTS} missing); pass a pretrain/finetune output")
    config = read_model_config(model_dir)
    metrics, lineage = metrics or {}, lineage or {}
    version = version or time.strftime("v%Y%m%d-%H%M%S", time.gmtime())
    base = Path(destination) / model_name
    final = base / version
    if final.exists():
        raise X2VLMError(f"release {final} already exists; releases are immutable, choose another --version")
    staging = base / f".{version}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(model_dir / WEIGHTS, staging / WEIGHTS)
        shutil.copyfile(model_dir / CONFIG, staging / CONFIG)
        shutil.copytree(model_dir / TOKENIZER, staging / TOKENIZER)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        (staging / "lineage.json").write_text(json.dumps(lineage, indent=2, sort_keys=True))
        (staging / "MODEL_CARD.md").write_text(_model_card(model_name, version, config, metrics, lineage))
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {
            "model_name": model_name,
            "version": version,
            "files": [{"path": str(p.relative_to(staging)), "size": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in files],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))  # last: marks the release complete
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = base / f".LATEST.tmp-{os.getpid()}"
    pointer.write_text(version + "\n")
    os.replace(pointer, base / "LATEST")
    return final


def verify_release(release_dir: str | Path) -> dict[str, Any]:
    """Check every file of a release against its manifest; returns the manifest."""
    release_dir = Path(release_dir)
    manifest_path = release_dir / MANIFEST
    if not manifest_path.is_file():
        raise X2VLMError(f"{release_dir} has no {MANIFEST}: it is not a complete release")
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        path = release_dir / entry["path"]
        if not path.is_file() or path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise X2VLMError(f"release file {path} is missing or does not match its manifest checksum")
    return manifest
