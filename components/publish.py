"""KFP components: publish the pre-trained model and each fine-tuned task model as immutable releases."""

from typing import List, NamedTuple

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
    container_images: dict = {},
) -> NamedTuple("Published", [("release_uri", str), ("version", str)]):
    """Writes <destination>/<model_name>/<version>/ (a folder or gs://) and records it in the `release` artifact.

    version: empty for a UTC timestamp (vYYYYMMDD-HHMMSS). The run name and id default to the KFP run's own.
    container_images: the images the pipeline's steps run in, name → reference (by digest where one
    was recorded), as the pipeline was compiled; lineage.json records them.
    """
    import hashlib
    import json
    from collections import namedtuple

    from x2vlm_core import storage
    from x2vlm_core.release.fetch import read_manifest
    from x2vlm_core.release.publish import publish_release

    metrics, metric_inputs = {}, []
    for artifact in task_metrics:
        with open(artifact.path, "rb") as f:
            raw = f.read()
        data = json.loads(raw)
        metrics[data["task"]] = data["metrics"]
        metric_inputs.append(
            {
                "task": data["task"],
                "uri": artifact.uri,
                "sha256": hashlib.sha256(raw).hexdigest(),
                "model": data.get("model"),
            }
        )
    lineage = {
        "pipeline_run": {"name": pipeline_run_name, "id": pipeline_run_id},
        "container_images": container_images,
        "inputs": {"model": {"uri": model.uri, "metadata": dict(model.metadata)}, "metrics": metric_inputs},
        # The data fingerprint the training stage recorded (index sha256 and counts), if it did.
        "training_data": model.metadata.get("data") or {"uri": model.metadata.get("shards", "not recorded")},
    }
    where = publish_release(
        model.path,
        destination,
        model_name,
        metrics=metrics,
        lineage=lineage,
        version=version or None,
        max_shard_bytes=max_shard_mb * 1024**2,
    )
    manifest = read_manifest(where)
    with open(release.path, "w") as f:
        json.dump({"release": where, **manifest}, f, indent=2)
    release.metadata.update(
        {
            "release_uri": where,
            "version": manifest["version"],
            "files": len(manifest["files"]),
            "bytes": sum(entry["size"] for entry in manifest["files"]),
            "manifest": storage.join(where, "manifest.json"),
            "inputs": {"model": model.uri, "metrics": [a.uri for a in task_metrics]},
        }
    )
    return namedtuple("Published", ["release_uri", "version"])(where, manifest["version"])


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def publish_task_models(
    models: Input[List[Model]],
    task_metrics: Input[List[Metrics]],
    destination: str,
    model_name: str,
    parent_release: str,
    releases: Output[Artifact],
    version: str = "",
    max_shard_mb: int = 2048,
    pipeline_run_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    pipeline_run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    container_images: dict = {},
):
    """Publishes each fine-tuned model as <destination>/<model_name>-<task>/<version>/ with its own metrics,
    its lineage naming ``parent_release`` (the pre-trained model's release). Each metrics artifact names
    the model it scored, which pairs them."""
    import json

    from x2vlm_core.errors import ReleaseError
    from x2vlm_core.release.task_release import publish_task_release

    scored = {}
    for artifact in task_metrics:
        with open(artifact.path) as f:
            data = json.load(f)
        scored[data.get("model")] = (artifact.uri, data)
    published = {}
    for model in models:
        metrics_uri, data = scored.get(model.uri, (None, None))
        if data is None:
            raise ReleaseError(
                f"no evaluation names the model {model.uri}; every task model is evaluated before it is published"
            )
        task = data["task"]
        lineage = {
            "pipeline_run": {"name": pipeline_run_name, "id": pipeline_run_id},
            "container_images": container_images,
            "inputs": {
                "model": {"uri": model.uri, "metadata": dict(model.metadata)},
                "metrics": [{"task": task, "uri": metrics_uri}],
            },
            "training_data": model.metadata.get("data") or {"uri": "not recorded"},
        }
        published[task] = publish_task_release(
            model.path,
            destination,
            model_name,
            task,
            data["metrics"],
            lineage,
            parent_model=model.metadata.get("parent_model", ""),
            parent_release=parent_release,
            version=version or None,
            max_shard_bytes=max_shard_mb * 1024**2,
        )
    with open(releases.path, "w") as f:
        json.dump(published, f, indent=2)
    releases.metadata.update(
        {
            "releases": published,
            "parent_release": parent_release,
            "inputs": {
                "models": [m.uri for m in models],  # lineage
                "metrics": [a.uri for a in task_metrics],
            },
        }
    )


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def publish_task_model(
    model: Input[Model],
    metrics: Input[Metrics],
    destination: str,
    model_name: str,
    base_model_uri: str,
    release: Output[Artifact],
    version: str = "",
    max_shard_mb: int = 2048,
    pipeline_run_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    pipeline_run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    container_images: dict = {},
):
    """Publishes one fine-tuned model as <destination>/<model_name>-<task>/<version>/; its parent is
    ``base_model_uri``, and that model's release when it is one."""
    import json

    from x2vlm_core.release.task_release import parent_release_of, publish_task_release

    with open(metrics.path) as f:
        data = json.load(f)
    lineage = {
        "pipeline_run": {"name": pipeline_run_name, "id": pipeline_run_id},
        "container_images": container_images,
        "inputs": {
            "model": {"uri": model.uri, "metadata": dict(model.metadata)},
            "metrics": [{"task": data["task"], "uri": metrics.uri}],
        },
        "training_data": model.metadata.get("data") or {"uri": "not recorded"},
    }
    where = publish_task_release(
        model.path,
        destination,
        model_name,
        data["task"],
        data["metrics"],
        lineage,
        parent_model=base_model_uri,
        parent_release=parent_release_of(base_model_uri),
        version=version or None,
        max_shard_bytes=max_shard_mb * 1024**2,
    )
    with open(release.path, "w") as f:
        json.dump({"release": where}, f)
    release.metadata.update({"release_uri": where, "task": data["task"], "parent_model": base_model_uri})
