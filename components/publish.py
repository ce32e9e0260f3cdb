"""KFP component: publish the model and every task's metrics as an immutable release."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from components.images import PUBLISH_IMAGE


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def publish(
    model: Input[Model],
    task_metrics: Input[List[Metrics]],
    destination: str,
    model_name: str,
    release: Output[Artifact],
    version: str = "",
    max_shard_mb: int = 2048,
    pipeline_run_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    pipeline_run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
):
    """Writes <destination>/<model_name>/<version>/ (a folder or gs://) and records it in the `release` artifact.

    version: empty for a UTC timestamp (vYYYYMMDD-HHMMSS). The run name and id default to the KFP run's own.
    """
    import hashlib
    import json

    from x2vlm_core import storage
    from x2vlm_core.release.publish import publish_release
    from x2vlm_core.release.fetch import read_manifest

    metrics, metric_inputs = {}, []
    for artifact in task_metrics:
        with open(artifact.path, "rb") as f:
            raw = f.read()
        data = json.loads(raw)
        metrics[data["task"]] = data["metrics"]
        metric_inputs.append({"task": data["task"], "uri": artifact.uri, "sha256": hashlib.sha256(raw).hexdigest(),
                              "model": data.get("model")})
    lineage = {
        "pipeline_run": {"name": pipeline_run_name, "id": pipeline_run_id},
        "inputs": {"model": {"uri": model.uri, "metadata": dict(model.metadata)}, "metrics": metric_inputs},
        # The data fingerprint the training stage recorded (index sha256 and counts), if it did.
        "training_data": model.metadata.get("data") or {"uri": model.metadata.get("shards", "not recorded")},
    }
    where = publish_release(model.path, destination, model_name, metrics=metrics, lineage=lineage,
                            version=version or None, max_shard_bytes=max_shard_mb * 1024**2)
    manifest = read_manifest(where)
    with open(release.path, "w") as f:
        json.dump({"release": where, **manifest}, f, indent=2)
    release.metadata.update({"release_uri": where, "version": manifest["version"], "files": len(manifest["files"]),
                             "bytes": sum(entry["size"] for entry in manifest["files"]),
                             "manifest": storage.join(where, "manifest.json"),
                             "inputs": {"model": model.uri, "metrics": [a.uri for a in task_metrics]}})
