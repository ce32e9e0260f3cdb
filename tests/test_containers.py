"""The pipeline inside its images: `make run-containers` on a small synthetic run.

Needs a container engine (scripts/container-engine.sh) and the images (make images-local);
skipped, with the reason, without them. Run with: make test-containers
(or .venv/bin/python -m pytest -m containers tests/test_containers.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.images import IMAGES
from pipelines.run_containers import USER, container_settings
from x2vlm_core.release.model_folder import load_model_dir
from x2vlm_core.release.publish import verify_release

pytestmark = pytest.mark.containers
REPO = Path(__file__).resolve().parents[1]
UID = int(USER.split(":")[0])


@pytest.fixture(scope="module")
def engine():
    docker = pytest.importorskip("docker", reason="the Docker SDK (the dev extra) is not installed")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:  # no socket, refused, wrong DOCKER_HOST: all mean no engine here
        pytest.skip(f"no container engine answers ({error}); start one: scripts/container-engine.sh")
    pinned = [ref for ref in IMAGES.values() if "@" in ref]
    if pinned:
        pytest.skip(f"the images are named by pushed digests ({', '.join(pinned)}); run with X2VLM_IMAGE_DIGESTS=")
    missing = [ref for ref in IMAGES.values() if not client.images.list(name=ref)]
    if missing:
        pytest.skip(f"images not built: {', '.join(missing)}; run make images-local")
    yield client
    client.close()


def run_step(client, image, script, run_dir):
    """Run ``sh -c script`` as a pipeline step would: same user, mounts and restrictions."""
    from docker.types import Mount

    settings = container_settings(run_dir)
    settings.pop("environment")
    # kfp.local's DockerTaskHandler adds the pipeline root, at the same path.
    root = str(run_dir / "pipeline_root")
    settings["mounts"].append(Mount(root, root, type="bind"))
    container = client.containers.run(IMAGES[image], ["sh", "-c", script], detach=True, **settings)
    try:
        code = container.wait()["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove()


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_a_step_is_confined_to_its_mounts(engine, image, tmp_path):
    """The settings every step gets really confine it: a probe shows what it may and may not do."""
    (tmp_path / "synthetic").mkdir()
    probe = (
        "id -u; grep CapEff /proc/self/status;"
        # Each write outside the mounts must fail; `!` turns a success into a failed probe.
        "for f in /home/x2vlm/x /opt/x /usr/x /x; do ! touch $f 2>/dev/null || echo WROTE $f; done;"
        f"! touch {tmp_path}/synthetic/x 2>/dev/null || echo WROTE synthetic;"
        f"touch /tmp/x {tmp_path}/releases/x {tmp_path}/pipeline_root/x && echo MOUNTS-WRITABLE"
    )
    code, log = run_step(engine, image, probe, tmp_path)
    assert code == 0, log
    lines = log.split("\n")
    assert lines[0] == str(UID)
    assert "CapEff:\t0000000000000000" in lines[1], log
    assert "WROTE" not in log and "MOUNTS-WRITABLE" in log, log
    assert (tmp_path / "releases" / "x").stat().st_uid == UID


def test_the_train_image_compiles_a_python_extension_at_run_time(engine, tmp_path):
    """What Triton (torch.compile under CUDA) and DeepSpeed's JIT ops do when a run starts: compile
    C against Python's headers into a shared object, as uid 10001 with a read-only root."""
    (tmp_path / "synthetic").mkdir()
    probe = (
        "include=$(python -c \"import sysconfig; print(sysconfig.get_paths()['include'])\") &&"
        " printf '#include <Python.h>\\nint probe(void) { return Py_IsInitialized(); }\\n' >/tmp/probe.c &&"
        ' cc -shared -fPIC -I"$include" /tmp/probe.c -o /tmp/probe.so && c++ --version >/dev/null && echo COMPILED'
    )
    code, log = run_step(engine, "train", probe, tmp_path)
    assert code == 0 and "COMPILED" in log, log


def test_the_pipeline_runs_with_every_step_in_its_image(engine, tmp_path):
    command = [
        sys.executable,
        "-m",
        "pipelines.run_containers",
        "--runs-dir",
        str(tmp_path),
        "--num-images",
        "96",
        "--pretrain-steps",
        "6",
        "--finetune-steps",
        "3",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    log = (run_dir / "pipeline.log").read_text()  # kfp.local's output, the steps' logs included
    # kfp.local names each step's image before it runs it; it would try (and fail) to pull a missing one.
    for ref in IMAGES.values():
        assert f"Found image {ref!r}" in log
    assert "Pulling image" not in log

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_status"] == ["SUCCEEDED"]
    (pretrained,) = summary["pretrained_model"]
    load_model_dir(pretrained)
    assert set(summary["metrics"]) == {"retrieval", "grounding"}
    (release,) = summary["published"]
    verify_release(release)

    # Everything the steps wrote is theirs: made as uid 10001, inside their mounts (the root
    # filesystem is read-only, so a write elsewhere has already failed the run above).
    written = [p for folder in ("pipeline_root", "releases") for p in (run_dir / folder).rglob("*")]
    assert len(written) > 20
    assert [p for p in written if p.stat().st_uid != UID] == []
    # The code that trained is the image's: its commit label, not this checkout's git.
    label = engine.images.get(IMAGES["train"]).labels["org.opencontainers.image.revision"]
    metadata = json.loads(next((run_dir / "pipeline_root").glob("*/pretrain/executor_output.json")).read_text())
    (model,) = metadata["artifacts"]["model"]["artifacts"]
    assert model["metadata"]["code_version"] == label
