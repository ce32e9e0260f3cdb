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
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from x2vlm_core.config_io import load_yaml, save_yaml
from x2vlm_core.errors import CheckpointError
from x2vlm_core.families import config_from_dict, create_model, family_of
from x2vlm_core.models.position_resize import (
    grid_of_table,
    resize_patch_position_embedding,
    resize_relative_position_bias_table,
)
from x2vlm_core.models.task_heads import load_task_heads, save_task_heads
from x2vlm_core.release.sharded_weights import WEIGHTS, WEIGHTS_INDEX, load_weights, read_safetensors

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
TOKENIZER = "tokenizer"


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (plain, or official ``{'model': ...}``)."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        return read_safetensors(path)  # a pickle named .safetensors is a one-line refusal, not a traceback
    return state_dict_of(read_torch_file(path), path)


def read_torch_file(path: str | Path) -> Any:
    """What a torch file holds, read with ``weights_only=True``: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it needs code execution to unpickle ({str(exc).splitlines()[0]}); "
            "only tensors-only checkpoints are accepted; convert it with a trusted tool to safetensors"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}".splitlines()[0]) from None


def state_dict_of(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The weights inside a checkpoint file's contents."""
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
    """Fit a checkpoint's position weights to the model, as the official loader does.

    Relative position bias tables (and a vision ``pos_embed``) are resized to the model's patch
    grid (another ``image_res``); the index buffers are derived from the grid, so the model's own
    are kept. A video checkpoint with another ``frame_len`` gives its first frames' position
    embeddings; frames beyond the checkpoint's keep the model's initialisation.
    """
    expected = model.state_dict()
    fitted = dict(state)
    for key, value in state.items():
        if key not in expected or expected[key].shape == value.shape:
            continue
        if key == "absolute_frame_pos_embed":
            # [1, F, 1, D]: only F may differ; any other mismatch is left for check_shapes to refuse.
            mine = expected[key]
            if value.dim() == mine.dim() == 4 and value[:, :1].shape == mine[:, :1].shape:
                frames = min(value.shape[1], mine.shape[1])
                log.info(
                    "%s: the checkpoint's %d frame positions fill the first %d of the model's %d",
                    key,
                    value.shape[1],
                    frames,
                    mine.shape[1],
                )
                merged = mine.detach().to("cpu", copy=True)
                merged[:, :frames] = value[:, :frames].to(merged.dtype)
                fitted[key] = merged
        elif key.endswith("relative_position_bias_table"):
            grid = grid_of_table(expected[key].shape[0])
            log.info(
                "resizing %s from a %dx%d to a %dx%d patch grid",
                key,
                grid_of_table(value.shape[0]),
                grid_of_table(value.shape[0]),
                grid,
                grid,
            )
            fitted[key] = resize_relative_position_bias_table(value, grid)
        elif key.endswith("relative_position_index"):
            fitted[key] = expected[key]
        elif key == "vision_encoder.pos_embed":
            fitted[key] = resize_patch_position_embedding(value, math.isqrt(expected[key].shape[1] - 1))
    return fitted


def check_shapes(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and expected[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{source} does not fit this model ({len(wrong)} shape mismatches, first: {wrong[0]}); "
            "check that the model preset and overrides match the checkpoint"
        )


def tied_aliases(model: nn.Module) -> set[str]:
    """Names that are second names of a parameter (the MLM decoder tied to the word embeddings)."""
    every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return every - {name for name, _ in model.named_parameters()}


def save_model_dir(model: nn.Module, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    aliases = tied_aliases(model)
    # Clone: under DeepSpeed the parameters may be views into one flat buffer.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items() if k not in aliases}
    save_file(state, str(out / WEIGHTS))
    save_yaml(model.config, out / CONFIG)
    save_task_heads(model, out)  # task models: which heads to rebuild on load
    family_of(model).save_tokenizer(model.config, out / TOKENIZER)
    if extra is not None:
        (out / "training.json").write_text(json.dumps(extra, indent=2, sort_keys=True))
    return out


def read_model_config(model_dir: str | Path) -> Any:
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS).is_file() and not (model_dir / WEIGHTS_INDEX).is_file():
        raise CheckpointError(f"{model_dir} is not a model folder: {WEIGHTS} is missing")
    data = load_yaml(model_dir / CONFIG)
    data["tokenizer"] = str(model_dir / TOKENIZER)  # the folder travels with the weights
    return config_from_dict(data, where=str(model_dir / CONFIG))


def load_model_dir(model_dir: str | Path) -> nn.Module:
    model = load_task_heads(create_model(read_model_config(model_dir)), model_dir)
    missing = init_from(model, model_dir)
    if missing:
        raise CheckpointError(f"{Path(model_dir) / WEIGHTS} does not fit its config.yaml: missing {missing[:3]}")
    return model


def init_from(model: nn.Module, source: str | Path) -> list[str]:
    """Initialise from a model folder or checkpoint file; returns the keys left at their init."""
    source = Path(source)
    state = load_weights(source) if source.is_dir() else load_state_file(source)  # a folder: whole or sharded
    # Each family fits official and other foreign layouts its own way (VLMo: one shared position table).
    state = family_of(model).adapt_checkpoint(model, state)
    check_shapes(model, state, str(source))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise CheckpointError(
            f"{source} has {len(unexpected)} weights this model lacks, e.g. {unexpected[:3]}; "
            "check that the model preset (or task) matches the checkpoint"
        )
    aliases = tied_aliases(model)  # filled through the parameter they alias
    left = [key for key in missing if key not in aliases]
    if left:
        log.warning(
            "%d weights are not in %s and keep their initialisation (new heads?): %s",
            len(left),
            source,
            ", ".join(left[:8]) + (" ..." if len(left) > 8 else ""),
        )
    return left
