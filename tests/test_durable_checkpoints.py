"""Checkpoints under a run-scoped durable prefix (gs:// on the emulator), SIGTERM, and the early checks."""

import json
import os
import signal

import pytest
import torch
from test_checkpoint_safety import _engine

from x2vlm_core import storage
from x2vlm_core.errors import CheckpointError, ConfigError, DataError
from x2vlm_core.run_checks import validate_run
from x2vlm_core.train import checkpointing
from x2vlm_core.train.durable import GcsMirror, checkpoint_location
from x2vlm_core.train.preemption import StopOnSigterm


def _train_and_save(engine, staging, mirror, step, keep=2):
    engine.backward(engine(torch.randn(2, 4))["loss"])
    engine.step()
    tag = checkpointing.save_checkpoint(
        engine, staging, step=step, rank=0, world_size=1, marker={}, keep=keep, collect=mirror.collect
    )
    return mirror.upload(tag)


def _remote_names(remote):
    return sorted(uri[len(remote) + 1 :] for uri in storage.list_uris(remote))


def test_a_gcs_checkpoint_is_uploaded_marker_last_and_restored_in_a_new_pod(gcs_bucket, tmp_path):
    remote = checkpoint_location(f"{gcs_bucket}/ckpt", "run-1", "pretrain")
    assert remote == f"{gcs_bucket}/ckpt/run-1/pretrain"
    engine = _engine()
    uri = _train_and_save(engine, tmp_path / "pod1", GcsMirror(remote, tmp_path / "pod1", 0, 0, 1), step=1)
    assert uri == f"{remote}/step1"
    names = _remote_names(remote)
    assert {"step1/complete.json", "step1/mp_rank_00_model_states.pt", "step1/rng-rank0.json"} <= set(names)
    assert json.loads(storage.read_bytes(f"{uri}/complete.json"))["files"].keys() == {
        n[len("step1/") :] for n in names if not n.endswith("complete.json")
    }

    # A retry lands on a fresh pod: its staging folder is empty, and it resumes from the bucket.
    assert GcsMirror(remote, tmp_path / "pod2", 0, 0, 1).restore() == 1
    fresh = _engine()
    assert checkpointing.load_latest(fresh, tmp_path / "pod2", 0, 1, {})["step"] == 1
    assert torch.equal(fresh.module.proj.weight, engine.module.proj.weight)


def test_restore_takes_only_the_newest_complete_remote_checkpoint(gcs_bucket, tmp_path):
    remote = f"{gcs_bucket}/ckpt/run/pretrain"
    engine, mirror = _engine(), GcsMirror(remote, tmp_path / "pod", 0, 0, 1)
    _train_and_save(engine, tmp_path / "pod", mirror, step=1)
    # An upload cut short at step 2 (files, no marker), and a step-3 save that never left the old pod.
    storage.write_bytes(f"{remote}/step2/mp_rank_00_model_states.pt", b"half")
    checkpointing.save_checkpoint(engine, tmp_path / "pod", step=3, rank=0, world_size=1, marker={}, keep=5)

    assert mirror.restore() == 1
    assert [tag for _, tag, _ in checkpointing.complete_checkpoints(tmp_path / "pod")] == ["step1"]
    assert checkpointing.load_latest(_engine(), tmp_path / "pod", 0, 1, {})["step"] == 1

    # The next save clears the leftovers of the cut-short one.
    _train_and_save(engine, tmp_path / "pod", mirror, step=4)
    assert not [n for n in _remote_names(remote) if n.startswith("step2/")]


def test_a_changed_object_in_the_bucket_is_refused_by_its_sha256(gcs_bucket, tmp_path):
    remote = f"{gcs_bucket}/ckpt/run/pretrain"
    _train_and_save(_engine(), tmp_path / "pod1", GcsMirror(remote, tmp_path / "pod1", 0, 0, 1), step=1)
    storage.write_bytes(f"{remote}/step1/rng-rank0.json", b"{}")
    GcsMirror(remote, tmp_path / "pod2", 0, 0, 1).restore()
    with pytest.raises(CheckpointError, match="rng-rank0.json is not the file this checkpoint saved"):
        checkpointing.load_latest(_engine(), tmp_path / "pod2", 0, 1, {})


def test_a_marker_listing_paths_outside_its_folder_is_refused(gcs_bucket, tmp_path):
    remote = f"{gcs_bucket}/ckpt/run/pretrain"
    storage.write_bytes(f"{remote}/step1/complete.json", json.dumps({"step": 1, "files": {"../x": "0"}}).encode())
    with pytest.raises(CheckpointError, match="outside its checkpoint folder"):
        GcsMirror(remote, tmp_path / "pod", 0, 0, 1).restore()
    assert not (tmp_path / "x").exists()


def test_remote_checkpoints_beyond_keep_are_deleted(gcs_bucket, tmp_path):
    remote = f"{gcs_bucket}/ckpt/run/pretrain"
    engine, mirror = _engine(), GcsMirror(remote, tmp_path / "pod", 0, 0, 1)
    for step in (1, 2, 3):
        _train_and_save(engine, tmp_path / "pod", mirror, step=step, keep=2)
    assert sorted({n.split("/")[0] for n in _remote_names(remote)}) == ["step2", "step3"]


@pytest.mark.parametrize("run_id", ["a/b", "..", "", "x y"])
def test_a_run_id_must_be_one_plain_path_component(run_id):
    with pytest.raises(ConfigError, match="--run-id"):
        checkpoint_location("gs://b/ckpt", run_id, "pretrain")


def test_sigterm_is_noted_and_the_time_left_counts_down():
    previous = signal.getsignal(signal.SIGTERM)
    with StopOnSigterm(30.0, torch.device("cpu"), 1) as sigterm:
        assert sigterm.seconds_left() is None
        os.kill(os.getpid(), signal.SIGTERM)
        left = sigterm.seconds_left()
        assert 29.0 < left <= 30.0
    assert signal.getsignal(signal.SIGTERM) is previous
    assert StopOnSigterm.save_fits(left, 10.0) and not StopOnSigterm.save_fits(left, 25.0)
    assert StopOnSigterm.save_fits(left, None) and not StopOnSigterm.save_fits(0.0, None)


def test_validate_run_refuses_a_checkpoint_root_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match="checkpoint root .* is not writable"):
        validate_run(checkpoint_root=str(tmp_path / "file" / "ckpt"))
    validate_run(checkpoint_root=str(tmp_path / "ckpt"))
    assert not [p for p in (tmp_path / "ckpt").iterdir()]  # the probe is gone


def test_validate_run_refuses_a_gcs_checkpoint_root_it_cannot_write(gcs_emulator):
    with pytest.raises(DataError, match="checkpoint root gs://no-such-bucket-x2/ckpt is not writable"):
        validate_run(checkpoint_root="gs://no-such-bucket-x2/ckpt")


def test_a_multi_node_run_needs_gcs_roots(gcs_bucket, tmp_path):
    with pytest.raises(ConfigError, match=r"checkpoint root .* is not gs://, but this run spans 2 nodes"):
        validate_run(checkpoint_root=str(tmp_path), world_size=16, gpus_per_node=8)
    with pytest.raises(ConfigError, match="2 problem"):
        validate_run(checkpoint_root=str(tmp_path), output_root=str(tmp_path), world_size=16, gpus_per_node=8)
    validate_run(checkpoint_root=str(tmp_path), world_size=8, gpus_per_node=8)  # one node: a path is fine
    validate_run(checkpoint_root=f"{gcs_bucket}/ckpt", output_root=f"{gcs_bucket}/out", world_size=16, gpus_per_node=8)


def test_the_cli_scopes_checkpoints_by_run_and_step(tmp_path):
    from x2vlm_core.cli import _checkpoints, _finetune_step_name, build_parser

    def parsed(*extra, command=("pretrain", "--output", "out/m")):
        return build_parser().parse_args([*command, *extra])

    few_shot = parsed(
        "--checkpoint-root",
        "gs://b/c",
        "--run-id",
        "r1",
        command=(
            "finetune",
            "--task",
            "xvnli",
            "--pretrained",
            "p",
            "--shards",
            "s",
            "--output",
            "out/m",
            "--few-shot",
            "8",
        ),
    )
    assert _checkpoints(few_shot, _finetune_step_name(few_shot)) == (
        "out/m.checkpoints",
        "gs://b/c/r1/finetune-xvnli-8-shot",
    )
    assert _checkpoints(parsed("--checkpoint-root", str(tmp_path), "--run-id", "r1"), "pretrain") == (
        str(tmp_path / "r1" / "pretrain"),
        None,
    )
    assert _checkpoints(parsed("--checkpoint-dir", "/ckpt"), "pretrain") == ("/ckpt", None)
    for extra, message in (
        (("--checkpoint-root", "gs://b/c"), "needs --run-id"),
        (("--run-id", "r1"), "give both"),
        (("--checkpoint-root", str(tmp_path), "--run-id", "r1", "--checkpoint-dir", "/x"), "give one"),
    ):
        with pytest.raises(ConfigError, match=message):
            _checkpoints(parsed(*extra), "pretrain")
