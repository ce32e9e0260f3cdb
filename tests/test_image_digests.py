"""Images by digest. `make images PUSH=1` records each pushed image's digest in images/digests.json;
compiled pipelines, the TrainJobs they start and the releases they publish then name the images by
it. scripts/pin-base-images.sh pins the Dockerfiles' base images the same way. The digests here are
made up (sha256 of a word): no registry is reachable from the tests."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import images

ROOT = Path(__file__).resolve().parents[1]


def digest(word: str) -> str:
    return "sha256:" + hashlib.sha256(word.encode()).hexdigest()


def test_recorded_digests_count_only_for_the_current_tag(tmp_path):
    path = tmp_path / "digests.json"
    assert images.recorded(path) == {} and images.recorded(None) == {}
    train = f"{images.tagged('train')}@{digest('train')}"
    earlier_beam = f"{images.REGISTRY}/x2vlm-beam:0.0.9@{digest('beam')}"  # a digest of another tag
    path.write_text(json.dumps({"train": train, "beam": earlier_beam}))
    assert images.recorded(path) == {"train": train}
    for bad in ({"train": images.tagged("train")}, {"train": train[:-1]}, {"trainer": train}, ["train"]):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            images.recorded(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        images.recorded(path)


def _images_cli(*args: str, digests: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, images.DIGESTS_ENV: str(digests), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "components.images", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_make_images_records_the_digest_of_a_pushed_image(tmp_path):
    """The two calls `make images` makes: the name to build under, then the digest buildx reports."""
    digests = tmp_path / "digests.json"
    pushed = tmp_path / "train.json"  # docker buildx build --metadata-file, after --push
    pushed.write_text(json.dumps({"containerimage.digest": digest("pushed"), "image.name": images.tagged("train")}))
    done = _images_cli("record", "train", str(pushed), digests=digests)
    assert done.returncode == 0, done.stderr
    assert json.loads(digests.read_text()) == {"train": f"{images.tagged('train')}@{digest('pushed')}"}
    # The build name stays the tag, whatever is recorded.
    assert _images_cli("tagged", "train", digests=digests).stdout.strip() == images.tagged("train")
    # A build that was only loaded locally has no registry digest: nothing is recorded.
    loaded = tmp_path / "beam.json"
    loaded.write_text(json.dumps({"containerimage.config.digest": digest("config")}))
    done = _images_cli("record", "beam", str(loaded), digests=digests)
    assert done.returncode == 1 and "was the image pushed" in done.stderr
    assert set(json.loads(digests.read_text())) == {"train"}


COMPILE = """
import sys
from kfp import compiler
from pipelines import full_pretrain_finetune as full, single_task_finetune as single
from pipelines.deployment import DeploymentSettings
for module, path in ((full, sys.argv[1]), (single, sys.argv[2])):
    compiler.Compiler().compile(module.build_pipeline(DeploymentSettings()), package_path=path)
"""


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the IR, in the root DAG and in every sub-DAG, by name."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {name: task for dag in dags for name, task in dag["tasks"].items()}


def _constant(task: dict, name: str):
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def test_compiled_pipelines_and_their_releases_name_recorded_images_by_digest(tmp_path):
    pinned = {name: f"{images.tagged(name)}@{digest(name)}" for name in images.NAMES}
    digests = tmp_path / "digests.json"
    digests.write_text(json.dumps(pinned))
    full_path, single_path = tmp_path / "full.yaml", tmp_path / "single.yaml"
    env = {**os.environ, images.DIGESTS_ENV: str(digests), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", COMPILE, str(full_path), str(single_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    full, single = (next(yaml.safe_load_all(p.read_text())) for p in (full_path, single_path))
    for spec in (full, single):
        used = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e}
        assert used and used <= set(pinned.values()), used
    assert {e["container"]["image"] for e in full["deploymentSpec"]["executors"].values()} == set(pinned.values())
    tasks = _tasks(full)
    # The TrainJob's nodes get the train image by digest too (the step cannot know it itself)...
    assert _constant(tasks["pretrain"], "trainer_image") == pinned["train"]
    # ...and every release records the images the pipeline ran in.
    assert _constant(tasks["publish"], "container_images") == pinned
    assert _constant(tasks["publish-task-models"], "container_images") == pinned
    assert _constant(_tasks(single)["publish-task-model"], "container_images") == pinned
    assert "@sha256:" in full_path.read_text() and f"x2vlm-train:{images.TAG}\n" not in full_path.read_text()


def test_without_a_recorded_digest_the_images_are_named_by_tag():
    """This checkout records none (nothing was pushed from here), or its digests are of this tag."""
    for name, ref in images.IMAGES.items():
        assert ref == images.tagged(name) or ref.startswith(images.tagged(name) + "@sha256:")


def _pin(*args: str, resolver: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["scripts/pin-base-images.sh", *args],
        cwd=ROOT,
        env={**os.environ, "RESOLVE": resolver},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pin_base_images_writes_the_digest_each_tag_names(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    original = (
        "ARG BASE_IMAGE=apache/beam_python3.11_sdk:2.77.0\n"
        "FROM alpine:3.20 AS tools\n"
        "FROM ${BASE_IMAGE}\n"
        "COPY --from=tools /bin/true /bin/true\n"
        "FROM tools\n"
    )
    dockerfile.write_text(original)
    # A resolver standing in for the registry: the sha256 of the reference it is asked about.
    resolver = tmp_path / "resolve"
    resolver.write_text("#!/bin/sh\nprintf 'sha256:%s\\n' \"$(printf '%s' \"$1\" | sha256sum | cut -d' ' -f1)\"\n")
    resolver.chmod(0o755)

    check = _pin("--check", str(dockerfile), resolver=str(resolver))
    assert check.returncode == 1
    assert "apache/beam_python3.11_sdk:2.77.0 is pinned by tag only" in check.stdout and "alpine:3.20" in check.stdout
    assert dockerfile.read_text() == original  # --check changes nothing

    done = _pin(str(dockerfile), resolver=str(resolver))
    assert done.returncode == 0, done.stderr
    beam = "apache/beam_python3.11_sdk:2.77.0@" + digest("apache/beam_python3.11_sdk:2.77.0")
    alpine = "alpine:3.20@" + digest("alpine:3.20")
    assert dockerfile.read_text() == original.replace(
        "BASE_IMAGE=apache/beam_python3.11_sdk:2.77.0", f"BASE_IMAGE={beam}"
    ).replace("FROM alpine:3.20 AS", f"FROM {alpine} AS")
    assert _pin("--check", str(dockerfile), resolver=str(resolver)).returncode == 0
    again = _pin(str(dockerfile), resolver=str(resolver))
    assert again.returncode == 0 and again.stdout.count("is current") == 2

    # A tag whose digest cannot be read is left as it is, and the run fails: no digest is made up.
    dockerfile.write_text(original)
    failed = _pin(str(dockerfile), resolver="false")
    assert failed.returncode == 1 and "could not read the digest" in failed.stderr
    assert dockerfile.read_text() == original
