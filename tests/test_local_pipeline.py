"""End to end: `make run`'s pipeline through kfp.local, checked for consistent outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from x2vlm_core.checkpoint import load_model_dir
from x2vlm_core.data.shards import read_index
from x2vlm_core.publish import verify_release

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_local_pipeline_end_to_end(tmp_path):
    command = [sys.executable, "-m", "pipelines.run_local", "--runs-dir", str(tmp_path), "--num-images", "96",
               "--pretrain-steps", "6", "--finetune-steps", "3"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())

    # Shards hold exactly what the generator wrote (the synthetic data has no rejects).
    manifest = json.loads((run_dir / "synthetic" / "manifest.json").read_text())
    (shards,) = summary["shards"]
    index = read_index(shards)
    counts = {d: {s: v["count"] for s, v in splits.items()} for d, splits in index["datasets"].items()}
    assert counts == manifest["datasets"]

    (pretrained,) = summary["pretrained_model"]
    load_model_dir(pretrained)
    assert len(summary["finetuned_models"]) == 2
    for path in summary["finetuned_models"]:
        load_model_dir(path)

    assert set(summary["metrics"]) == {"retrieval", "grounding"}
    for task, values in summary["metrics"].items():
        numbers = {k: v for k, v in values.items() if k != "file" and not k.endswith("_count")}
        assert numbers and all(0.0 <= v <= 1.0 for v in numbers.values()), (task, numbers)

    (release,) = summary["published"]
    manifest = verify_release(release)
    names = {f["path"] for f in manifest["files"]}
    assert {"model.safetensors", "config.yaml", "tokenizer/vocab.txt", "metrics.json", "lineage.json",
            "MODEL_CARD.md"} <= names
    published_metrics = json.loads((Path(release) / "metrics.json").read_text())
    assert set(published_metrics) == {"retrieval", "grounding"}
