import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OFFICIAL_TINY = SHARED / "fixtures" / "x2vlm_official_tiny"

# Keep CPU tests deterministic and light on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def official_tiny() -> Path:
    if not (OFFICIAL_TINY / "x2vlm_tiny.th").is_file():
        pytest.skip(f"official parity fixture not found at {OFFICIAL_TINY} (../shared is absent)")
    return OFFICIAL_TINY


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
    from components.prepare_data.beam_pipeline import run_prepare_data

    root, _ = shapes_world
    out = tmp_path_factory.mktemp("shards")
    run_prepare_data(str(root / "sources.yaml"), str(out), shard_size=32, max_image_side=64)
    return out
