"""KFP component: the release gate, on the evaluation metrics, before anything is published."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Output

# The light CPU image: this step reads a few small JSON files.
from components.images import PUBLISH_IMAGE


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def release_gate(
    task_metrics: Input[List[Metrics]],
    destination: str,
    release_name: str,
    decision: Output[Artifact],
    min_metrics: dict = {},
    compare_to_latest: bool = True,
    max_regression: float = 0.0,
) -> bool:
    """True (publish) when every ``min_metrics`` threshold ({"<task>/<metric>": value}) is met and,
    with ``compare_to_latest``, no metric dropped more than ``max_regression`` below the LATEST release of
    ``release_name`` under ``destination`` (a first release passes). See x2vlm_core/release/gate.py.
    The `decision` artifact holds the reasons and the release compared against. (One boolean output:
    kfp.local resolves a dsl.If condition only on a component's single `Output`.)"""
    import json

    from x2vlm_core.release.gate import gate_release

    candidate = {}
    for artifact in task_metrics:
        with open(artifact.path) as f:
            data = json.load(f)
        candidate[data["task"]] = data["metrics"]
    verdict = gate_release(candidate, destination, release_name, dict(min_metrics), compare_to_latest, max_regression)
    print(verdict.summary(), flush=True)
    record = {
        "publish": verdict.passed,
        "reasons": verdict.reasons,
        "compared_to": verdict.compared_to,
        "checks": verdict.checked,
    }
    with open(decision.path, "w") as f:
        json.dump(record, f, indent=2)
    decision.metadata.update({**record, "inputs": {"metrics": [a.uri for a in task_metrics]}})  # lineage
    return verdict.passed


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def task_release_gate(
    metrics: Input[Metrics],
    destination: str,
    release_name: str,
    decision: Output[Artifact],
    min_metrics: dict = {},
    compare_to_latest: bool = True,
    max_regression: float = 0.0,
) -> bool:
    """The same gate as ``release_gate``, for the one task model of a single-task run."""
    import json

    from x2vlm_core.release.gate import gate_release

    with open(metrics.path) as f:
        data = json.load(f)
    verdict = gate_release(
        {data["task"]: data["metrics"]}, destination, release_name, dict(min_metrics), compare_to_latest, max_regression
    )
    print(verdict.summary(), flush=True)
    record = {
        "publish": verdict.passed,
        "reasons": verdict.reasons,
        "compared_to": verdict.compared_to,
        "checks": verdict.checked,
    }
    with open(decision.path, "w") as f:
        json.dump(record, f, indent=2)
    decision.metadata.update({**record, "inputs": {"metrics": metrics.uri}})  # lineage
    return verdict.passed
