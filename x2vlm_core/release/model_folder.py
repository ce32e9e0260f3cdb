"""Model files: safe loading of official checkpoints, safetensors model folders.

A model folder holds ``model.safetensors``, ``config.yaml`` (the ModelConfig) and
``tokenizer/vocab.txt``; it is what the stages pass to each other and what gets
published. Pickled checkpoints are only ever read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from x2vlm_core.config_io import load_yaml, save_yaml
from x2vlm_core.errors import CheckpointError
from x2vlm_core.models.cclm import CCLM
from x2vlm_core.models.cclm_checkpoint import adapt_cclm_state
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.position_resize import (
    grid_of_table, resize_patch_position_embedding, resize_relative_position_bias_table,
)
from x2vlm_core.models.registry import config_from_dict, create_model
from x2vlm_core.models.task_heads import load_task_heads, save_task_heads
from x2vlm_core.models.vlmo import VLMo
from x2vlm_core.models.vlmo_checkpoint import adapt_official_state
from x2vlm_core.models.vlmo_config import VLMoConfig
from x2vlm_core.models.xvlm import XVLM
from x2vlm_core.release.sharded_weights import WEIGHTS, WEIGHTS_INDEX, load_weights, read_safetensors
from x2vlm_core.text.xlmr import save_multilingual_tokenizer
from x2vlm_core.text.wordpiece import tokenizer_dir

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
TOKENIZER = "tokenizer"


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (plain, or official ``{'model': ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it needs code execution to unpickle ({str(exc).splitlines()[0]}); "
            "only tensors-only checkpoints are accepted; convert it with a trusted tool to safetensors"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}".splitlines()[0]) from None
    # X²-VLM files wrap the weights in 'model'; VLMo's may use 'state_dict' (Lightning) or 'module' (DeepSpeed).
    wrapper = next((key for key in ("model", "state_dict", "module") if isinstance(obj, dict) and key in obj), None)
    state = obj[wrapper] if wrapper else obj if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors or {{'model': ...}})")
    return from_official_layout(state)


def from_official_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official checkpoints keep ``temp`` as a 0-dim tensor; ours is ``[1]``."""
    if "temp" in state and state["temp"].dim() == 0:
        state = {**state, "temp": state["temp"].reshape(1)}
    return state


def fit_image_resolution(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resize relative position bias tables (and a vision ``pos_embed``) to the model's patch grid
    (another ``image_res``).

    The index buffers are derived from the grid, so the model's own are kept.
    """
    expected = model.state_dict()
    fitted = dict(state)
    for key, value in state.items():
        if key not in expected or expected[key].shape == value.shape:
            continue
        if key.endswith("relative_position_bias_table"):
            grid = grid_of_table(expected[key].shape[0])
            log.info("resizing %s from a %dx%d to a %dx%d patch grid", key,
                     grid_of_table(value.shape[0]), grid_of_table(value.shape[0]), grid, grid)
            fitted[key] = resize_relative_position_bias_table(value, grid)
        elif key.endswith("relative_position_index"):
            fitted[key] = expected[key]
        elif key == "vision_encoder.pos_embed":
            fitted[key] = resize_patch_position_embedding(value, math.isqrt(expected[key].shape[1] - 1))
    return fitted


def check_shapes(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
             for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if wrong:
        raise CheckpointError(
            f"{source} does not fit this model ({len(wrong)} shape mismatches, first: {wrong[0]}); "
            "check that the model preset and overrides match the checkpoint")


def tied_aliases(model: nn.Module) -> set[str]:
    """Names that are second names of a parameter (the MLM decoder tied to the word embeddings)."""
    every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return every - {name for name, _ in model.named_parameters()}


def save_model_dir(model: XVLM, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    aliases = tied_aliases(model)
    # Clone: under DeepSpeed the parameters may be views into one flat buffer.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()
             if k not in aliases}
    save_file(state, str(out / WEIGHTS))
    save_yaml(model.config, out / CONFIG)
    save_task_heads(model, out)  # task models: which heads to rebuild on load
    if isinstance(model, CCLM):  # XLM-R's sentencepiece model instead of a WordPiece vocab.txt
        save_multilingual_tokenizer(model.config.tokenizer, out / TOKENIZER)
    else:
        vocab = tokenizer_dir(model.config.tokenizer) / "vocab.txt"
        (out / TOKENIZER).mkdir(exist_ok=True)
        shutil.copyfile(vocab, out / TOKENIZER / "vocab.txt")
    if extra is not None:
        (out / "training.json").write_text(json.dumps(extra, indent=2, sort_keys=True))
    return out


def read_model_config(model_dir: str | Path) -> ModelConfig | VLMoConfig:
    model_dir = Path(model_dir)
    data = load_yaml(model_dir / CONFIG)
    data["tokenizer"] = str(model_dir / TOKENIZER)  # the folder travels with the weights
    return config_from_dict(data, where=str(model_dir / CONFIG))


def load_model_dir(model_dir: str | Path) -> XVLM:
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS).is_file() and not (model_dir / WEIGHTS_INDEX).is_file():
        raise CheckpointError(f"{model_dir} is not a model folder: {WEIGHTS} is missing")
    model = load_task_heads(create_model(read_model_config(model_dir)), model_dir)
    missing = init_from(model, model_dir)
    if missing:
        raise CheckpointError(f"{model_dir / WEIGHTS} does not fit its config.yaml: missing {missing[:3]}")
    return model


def init_from(model: XVLM, source: str | Path) -> list[str]:
    """Initialise from a model folder or checkpoint file; returns the keys left at their init."""
    source = Path(source)
    state = load_weights(source) if source.is_dir() else load_state_file(source)  # a folder: whole or sharded
    # Each family fits foreign checkpoints its own way (VLMo: one shared position table, renamed keys).
    if isinstance(model, CCLM):  # X²-VLM checkpoints: fusion layers → cross encoder, text encoder replaced
        state = adapt_cclm_state(model, state)
    state = adapt_official_state(model, state) if isinstance(model, VLMo) else fit_image_resolution(model, state)
    check_shapes(model, state, str(source))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise CheckpointError(f"{source} has {len(unexpected)} weights this model lacks, e.g. {unexpected[:3]}; "
                              "check that the model preset (or task) matches the checkpoint")
    aliases = tied_aliases(model)  # filled through the parameter they alias
    left = [key for key in missing if key not in aliases]
    if left:
        log.warning("%d weights are not in %s and keep their initialisation (new heads?): %s",
                    len(left), source, ", ".join(left[:8]) + (" ..." if len(left) > 8 else ""))
    return left
