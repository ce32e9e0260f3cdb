"""Real DeepSpeed on 2 CPU processes (gloo): ZeRO-1/2 match one rank, two nodes, kill and exact resume.

The data has one shard per dataset, so each rank takes every other sample and the two ranks'
batches together are exactly the one-rank batch; dropout is off, so what remains between
the curves is only where each rank draws its ITM hard negatives and averages its MLM loss.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from test_pretrain_streaming import one_shard_copy

from x2vlm_core.run_config import load_run_config
from x2vlm_core.train.pretrain import run_pretrain

pytestmark = [pytest.mark.slow, pytest.mark.deepspeed]

STEPS = 6
SETTINGS = [
    f"train.steps={STEPS}",
    "train.batch_size=8",
    "train.region_batch_images=4",
    "train.region_batch_size=8",
    "train.log_every=1",
    "train.save_every=2",
    "train.shuffle_buffer=16",
    "train.tensorboard=false",
    "model.text.hidden_dropout=0",
    "model.text.attention_dropout=0",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def one_shard(tiny_shards, tmp_path_factory):
    return one_shard_copy(tiny_shards, tmp_path_factory.mktemp("one_shard"))


def _pretrain_args(shards, out, *extra):
    args = ["-m", "x2vlm_core.cli", "pretrain", "--shards", str(shards), "--output", str(out), "--model", "x2vlm_tiny"]
    for item in (*SETTINGS, *extra):
        args += ["--set", item]
    return args


def _torchrun(*launcher):
    return [sys.executable, "-m", "torch.distributed.run", *launcher]


def _history(out):
    return {r["step"]: r for r in json.loads((out / "training.json").read_text())["history"]}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def zero2_two_ranks(one_shard, tmp_path_factory):
    out = tmp_path_factory.mktemp("zero2") / "model"
    done = subprocess.run(
        _torchrun("--standalone", "--nproc_per_node=2") + _pretrain_args(one_shard, out, "train.zero_stage=2"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_zero1_on_two_nodes_and_zero2_on_two_ranks_match_one_rank(one_shard, zero2_two_ranks, tmp_path):
    model_cfg, cfg = load_run_config(None, "x2vlm_tiny", SETTINGS)
    run_pretrain(model_cfg, cfg, one_shard, tmp_path / "one", tmp_path / "one.ckpt")

    # Two "nodes" of one process each, rendezvous on 127.0.0.1 as separate machines would.
    port, nodes = _free_port(), []
    for node_rank in (0, 1):
        launcher = [
            "--nnodes=2",
            f"--node_rank={node_rank}",
            "--nproc_per_node=1",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
        ]
        nodes.append(
            subprocess.Popen(
                _torchrun(*launcher) + _pretrain_args(one_shard, tmp_path / "nodes", "train.zero_stage=1"),
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    assert json.loads((tmp_path / "nodes" / "training.json").read_text())["world_size"] == 2

    one = _history(tmp_path / "one")
    for other in (_history(tmp_path / "nodes"), _history(zero2_two_ranks)):
        assert sorted(other) == list(range(1, STEPS + 1))
        # Step 1: same weights, same 8 pairs split 4 + 4, ITC over the gathered features.
        assert other[1]["itc"] == pytest.approx(one[1]["itc"], abs=1e-4)
        for step in one:
            assert other[step]["loss"] == pytest.approx(one[step]["loss"], rel=0.02), step
            assert other[step]["lr"] == pytest.approx(one[step]["lr"])


def test_killed_run_resumes_with_identical_losses(one_shard, zero2_two_ranks, tmp_path):
    command = _torchrun("--standalone", "--nproc_per_node=2") + _pretrain_args(
        one_shard, tmp_path / "m", "train.zero_stage=2"
    )
    run = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "m.checkpoints" / "step2" / "complete.json"
    deadline = time.time() + 300
    while not marker.exists():
        assert run.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    # SIGKILL torchrun and both workers, as a node failure would: no chance to clean up.
    launcher = psutil.Process(run.pid)
    for process in [*launcher.children(recursive=True), launcher]:
        process.kill()
    run.wait()

    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "m" / "training.json").read_text())
    resumed_from = summary["resumed_from_step"]
    assert 2 <= resumed_from < STEPS, "the kill came too late to test anything"
    reference, resumed = _history(zero2_two_ranks), _history(tmp_path / "m")
    assert sorted(resumed) == list(range(resumed_from + 1, STEPS + 1))
    for step, record in resumed.items():
        for name in ("loss", "itc", "itm", "mlm", "region_itc", "region_itm", "region_bbox", "region_giou", "lr"):
            assert record[name] == pytest.approx(reference[step][name], rel=1e-6, abs=1e-7), (step, name)


def test_a_killed_run_retried_on_a_new_pod_resumes_from_gcs(one_shard, zero2_two_ranks, gcs_bucket, tmp_path):
    """As a KFP retry after a lost node: the first pod's disk is gone, the bucket holds the checkpoints."""
    from x2vlm_core import storage

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # now with the emulator's address
    root, remote = f"{gcs_bucket}/ckpt", f"{gcs_bucket}/ckpt/run-7/pretrain"

    def attempt(pod):
        return (
            _torchrun("--standalone", "--nproc_per_node=2")
            + _pretrain_args(one_shard, tmp_path / pod / "m", "train.zero_stage=2")
            + ["--checkpoint-root", root, "--run-id", "run-7"]
        )

    run = subprocess.Popen(attempt("pod1"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not storage.exists(f"{remote}/step2/complete.json"):
        assert run.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.1)
    launcher = psutil.Process(run.pid)
    for process in [*launcher.children(recursive=True), launcher]:
        process.kill()
    run.wait()

    done = subprocess.run(attempt("pod2"), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "pod2" / "m" / "training.json").read_text())
    resumed_from = summary["resumed_from_step"]
    assert 2 <= resumed_from < STEPS, "the kill came too late to test anything"
    assert summary["checkpoint"] == f"{remote}/step{STEPS}"
    assert storage.exists(f"{remote}/step{STEPS}/complete.json")
    reference, resumed = _history(zero2_two_ranks), _history(tmp_path / "pod2" / "m")
    assert sorted(resumed) == list(range(resumed_from + 1, STEPS + 1))
    for step, record in resumed.items():
        for name in ("loss", "itc", "itm", "mlm", "region_itc", "region_itm", "region_bbox", "region_giou", "lr"):
            assert record[name] == pytest.approx(reference[step][name], rel=1e-6, abs=1e-7), (step, name)


def test_sigterm_saves_when_there_is_time_and_exits_143(one_shard, tmp_path):
    """As a spot node's notice: the trainer saves the step it is on (the last save took far less than
    the grace period), leaves a complete, verified checkpoint and exits 143 with one line."""
    from x2vlm_core.train import checkpointing

    command = [
        sys.executable,
        *_pretrain_args(one_shard, tmp_path / "m", "train.steps=200"),
        "--checkpoint-root",
        str(tmp_path / "ckpt"),
        "--run-id",
        "run-1",
    ]
    run = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "ckpt" / "run-1" / "pretrain"
    deadline = time.time() + 300
    while not (folder / "step2" / "complete.json").exists():
        assert run.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("x2vlm pretrain: error: stopped by SIGTERM after step "), last
    step, tag, marker = checkpointing.complete_checkpoints(folder)[-1]
    assert step > 2 and f"saved {folder / tag};" in last
    assert marker["micro_batches_consumed"] == step
    checkpointing.verify_files(folder / tag, marker)


def test_two_nodes_staging_apart_upload_one_whole_checkpoint(one_shard, gcs_bucket, tmp_path):
    """Nodes with disks of their own: rank 1's ZeRO shard reaches the bucket and rank 0's marker."""
    from x2vlm_core import storage
    from x2vlm_core.train import checkpointing
    from x2vlm_core.train.durable import GcsMirror

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    remote = f"{gcs_bucket}/ckpt/run-2/pretrain"
    port, nodes = _free_port(), []
    for node_rank in (0, 1):
        launcher = [
            "--nnodes=2",
            f"--node_rank={node_rank}",
            "--nproc_per_node=1",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
        ]
        nodes.append(
            subprocess.Popen(
                _torchrun(*launcher)
                + _pretrain_args(one_shard, tmp_path / f"node{node_rank}" / "m", "train.zero_stage=2", "train.steps=2")
                + [
                    "--checkpoint-root",
                    f"{gcs_bucket}/ckpt",
                    "--run-id",
                    "run-2",
                    "--checkpoint-dir",
                    str(tmp_path / f"node{node_rank}" / "staging"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]

    marker = json.loads(storage.read_bytes(f"{remote}/step2/complete.json"))
    assert {"rng-rank0.json", "rng-rank1.json"} <= set(marker["files"])
    assert sum("optim_states" in name for name in marker["files"]) == 2  # one ZeRO shard per rank
    assert not list((tmp_path / "node1" / "staging").glob("step*"))  # uploaded, then dropped
    assert GcsMirror(remote, tmp_path / "fresh", 0, 0, 1).restore() == 2
    checkpointing.verify_files(tmp_path / "fresh" / "step2", marker)
