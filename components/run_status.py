"""KFP component: the exit task that records how a pipeline run ended (it runs even when a step failed)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

# The light CPU image: this step writes one small file and needs no GPU.
from components.images import PUBLISH_IMAGE


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def record_run_status(
    status: dsl.PipelineTaskFinalStatus,
    output_root: str,
    run_status: Output[Artifact],
):
    """Writes the run's final state (and its error, if any) to the `run_status` artifact and to
    <output_root>/run-status/<run>.json, where alerting and dashboards can find it without the KFP API.

    KFP 2.17's driver fills only the state: error_code and error_message stay empty
    (backend/src/v2/driver/resolve.go), and ``task`` is the exit handler's group, not the step that
    failed. A failed run's record says so, and where to look instead."""
    import json
    import re
    import time

    from x2vlm_core import storage
    from x2vlm_core.release.lineage import code_version

    record = {
        "state": status.state,
        "pipeline_run": status.pipeline_job_resource_name,
        "task": status.pipeline_task_name,
        "error_code": status.error_code,
        "error_message": status.error_message,
        "error_note": None,
        "code_version": code_version(),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if status.state not in ("SUCCEEDED", "COMPLETE") and not status.error_message:
        record["error_note"] = (
            "KFP 2.17 does not tell exit handlers which step failed or why: see the run's graph in the KFP UI "
            f"(run {status.pipeline_job_resource_name})"
        )
    text = json.dumps(record, indent=2)
    print(text, flush=True)
    with open(run_status.path, "w") as f:
        f.write(text)
    run_status.metadata.update({k: v for k, v in record.items() if v is not None})
    if output_root:
        run_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", status.pipeline_job_resource_name or "run").strip("-")
        storage.write_bytes(storage.join(output_root, "run-status", f"{run_name}.json"), text.encode())
