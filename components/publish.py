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
):
    """Writes <destination>/<model_name>/<version>/ and records where in the `release` artifact."""
    import json

    from x2vlm_core.publish import publish_release

    metrics = {}
    for artifact in task_metrics:
        with open(artifact.path) as f:
            data = json.load(f)
        metrics[data["task"]] = data["metrics"]
    lineage = {"model": model.uri, "model_metadata": dict(model.metadata),
               "metrics": [a.uri for a in task_metrics], "data": model.metadata.get("shards", "not recorded")}
    folder = publish_release(model.path, destination, model_name, metrics=metrics, lineage=lineage)
    manifest = json.loads((folder / "manifest.json").read_text())
    with open(release.path, "w") as f:
        json.dump({"release": str(folder), **manifest}, f, indent=2)
    release.metadata.update({"release_uri": str(folder), "version": manifest["version"],
                             "files": len(manifest["files"])})
