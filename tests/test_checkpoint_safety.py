"""A checkpoint folder on shared storage cannot run code in the trainer, nor be swapped unnoticed."""

import json
import shutil

import pytest
import torch
from torch import nn

from x2vlm_core.config_io import from_dict
from x2vlm_core.errors import CheckpointError
from x2vlm_core.train import checkpointing
from x2vlm_core.train.config import TrainConfig
from x2vlm_core.train.distributed import init_distributed
from x2vlm_core.train.engine import build_engine


class Payload:
    """What an attacker pickles: unpickling it creates the marker file (no shell needed)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


class Tiny(nn.Module):
    def __init__(self, config=None):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return {"loss": self.norm(self.proj(x.to(self.proj.weight.dtype))).float().square().mean()}


def _engine(zero_stage=1, precision="fp32"):
    torch.manual_seed(0)
    cfg = from_dict(TrainConfig, {"batch_size": 2, "steps": 2, "zero_stage": zero_stage, "precision": precision})
    return build_engine(Tiny(), cfg, init_distributed().device, micro_batch=2)


def _saved(tmp_path, **engine_kw):
    engine = _engine(**engine_kw)
    engine.backward(engine(torch.randn(2, 4))["loss"])
    engine.step()
    checkpointing.save_checkpoint(engine, tmp_path / "ckpt", step=1, rank=0, world_size=1, marker={}, keep=2)
    return engine, tmp_path / "ckpt" / "step1"


def _plant(path, marker):
    torch.save({"module": Payload(marker)}, path)


def _rehash(folder):
    """The strongest attacker: also rewrites complete.json so the hashes match the planted file."""
    complete = json.loads((folder / "complete.json").read_text())
    complete["files"] = checkpointing.file_hashes(folder)
    (folder / "complete.json").write_text(json.dumps(complete))


def test_the_planted_payload_is_live(tmp_path):
    """The attack as found: DeepSpeed's plain torch.load(weights_only=False) runs the payload."""
    _plant(tmp_path / "evil.pt", tmp_path / "pwned")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "pwned").exists()


def test_a_clean_checkpoint_resumes(tmp_path):
    engine, folder = _saved(tmp_path)
    recorded = json.loads((folder / "complete.json").read_text())["files"]
    assert {"mp_rank_00_model_states.pt", "rng-rank0.json"} <= set(recorded)
    fresh = _engine()
    assert checkpointing.load_latest(fresh, tmp_path / "ckpt", 0, 1, {})["step"] == 1
    assert torch.equal(fresh.module.proj.weight, engine.module.proj.weight)


def test_a_planted_model_states_file_is_refused_before_loading(tmp_path):
    _, folder = _saved(tmp_path)
    _plant(folder / "mp_rank_00_model_states.pt", tmp_path / "pwned")
    with pytest.raises(CheckpointError, match="mp_rank_00_model_states.pt is not the file this checkpoint saved"):
        checkpointing.load_latest(_engine(), tmp_path / "ckpt", 0, 1, {})
    assert not (tmp_path / "pwned").exists()


def test_a_planted_file_with_a_forged_marker_is_never_unpickled(tmp_path):
    _, folder = _saved(tmp_path)
    _plant(folder / "mp_rank_00_model_states.pt", tmp_path / "pwned")
    _rehash(folder)
    with pytest.raises(CheckpointError, match="refused to load a checkpoint file") as err:
        checkpointing.load_latest(_engine(), tmp_path / "ckpt", 0, 1, {})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_an_extra_file_or_a_link_is_refused(tmp_path):
    _, folder = _saved(tmp_path)
    _plant(folder / "zero_pp_rank_1_mp_rank_00_optim_states.pt", tmp_path / "pwned")  # globbed by zero_to_fp32
    with pytest.raises(CheckpointError, match="zero_pp_rank_1_mp_rank_00_optim_states.pt is not the file"):
        checkpointing.load_latest(_engine(), tmp_path / "ckpt", 0, 1, {})
    (folder / "zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    (folder / "rng-rank0.json").rename(tmp_path / "rng.json")
    (folder / "rng-rank0.json").symlink_to(tmp_path / "rng.json")
    with pytest.raises(CheckpointError, match="is a link or special file"):
        checkpointing.load_latest(_engine(), tmp_path / "ckpt", 0, 1, {})
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("zero_stage, precision", [(2, "bf16"), (3, "fp32")])
def test_consolidation_reads_weights_only(tmp_path, zero_stage, precision):
    """The fp32 master weights are rebuilt from the shards by zero_to_fp32, which DeepSpeed loads with pickle."""
    engine, folder = _saved(tmp_path, zero_stage=zero_stage, precision=precision)
    clean = checkpointing.consolidated_model(engine, engine.module, tmp_path / "ckpt", "step1")
    assert all(p.dtype == torch.float32 and p.numel() for p in clean.parameters())

    optim = next(folder.glob("*optim_states.pt"))
    shutil.copy(optim, tmp_path / "original.pt")
    torch.save({"optimizer_state_dict": Payload(tmp_path / "pwned")}, optim)
    with pytest.raises(CheckpointError, match="refused to load"):
        checkpointing.consolidated_model(engine, engine.module, tmp_path / "ckpt", "step1")
    assert not (tmp_path / "pwned").exists()
