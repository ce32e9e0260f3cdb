import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OFFICIAL_TINY = SHARED / "fixtures" / "x2vlm_official_tiny"
OFFICIAL_XVLM_TINY = SHARED / "fixtures" / "xvlm_official_tiny"

# Keep CPU tests deterministic and light on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# Fixtures that run a real stage: a test using one, even through another fixture, runs that stage
# too, so it gets the stage's markers here rather than by hand in every test file.
FIXTURE_MARKERS = {
    "tiny_shards": ("beam",),
    "local_pipeline_run": ("pipeline", "beam", "deepspeed"),
}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, markers in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                for marker in markers:
                    item.add_marker(marker)


@pytest.fixture
def official_tiny() -> Path:
    if not (OFFICIAL_TINY / "x2vlm_tiny.th").is_file():
        pytest.skip(f"official parity fixture not found at {OFFICIAL_TINY} (../shared is absent)")
    return OFFICIAL_TINY


@pytest.fixture(scope="session")
def official_xvlm_tiny() -> Path:
    if not (OFFICIAL_XVLM_TINY / "xvlm_tiny.th").is_file():
        pytest.skip(f"official X-VLM parity fixture not found at {OFFICIAL_XVLM_TINY} (../shared is absent)")
    return OFFICIAL_XVLM_TINY


@pytest.fixture(scope="session")
def shapes_world(tmp_path_factory):
    """A small synthetic world in the real dataset formats, and its manifest."""
    from x2vlm_core.data.synthetic import generate_shapes_world

    root = tmp_path_factory.mktemp("shapes_world")
    manifest = generate_shapes_world(root, num_images=96, seed=3)
    return root, manifest


@pytest.fixture(scope="session")
def tiny_shards(shapes_world, tmp_path_factory):
    """Shards of the synthetic world, written by the real Beam job."""
    from x2vlm_core.dataprep.beam_job import run_prepare_data

    root, _ = shapes_world
    out = tmp_path_factory.mktemp("shards")
    run_prepare_data(str(root / "sources.yaml"), str(out), shard_size=32, max_image_side=64)
    return out


@pytest.fixture(scope="session")
def gcs_emulator():
    """A local GCS emulator that the real google-cloud-storage client talks to over HTTP."""
    import socket

    from gcp_storage_emulator.server import create_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    from x2vlm_core import storage

    storage.client.cache_clear()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    storage.client.cache_clear()


@pytest.fixture
def gcs_bucket(gcs_emulator, request):
    """A fresh, empty bucket on the emulator, as a gs:// URI."""
    import re

    from x2vlm_core import storage

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") or "bucket"
    bucket = storage.client().bucket(name)
    if not bucket.exists():
        storage.client().create_bucket(name)
    return f"gs://{name}"


@pytest.fixture(scope="session")
def local_pipeline_run(tmp_path_factory):
    """One small `make run` (the full pipeline through kfp.local), shared by the tests that read its output.

    Returns (run folder, the finished process); the tests check its return code themselves."""
    import subprocess
    import sys

    runs = tmp_path_factory.mktemp("local_runs")
    command = [
        sys.executable,
        "-m",
        "pipelines.run_local",
        "--runs-dir",
        str(runs),
        "--num-images",
        "96",
        "--pretrain-steps",
        "6",
        "--finetune-steps",
        "3",
    ]
    done = subprocess.run(
        command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=1200
    )
    folders = [p for p in runs.iterdir() if p.is_dir()]
    return (folders[0] if len(folders) == 1 else runs), done
