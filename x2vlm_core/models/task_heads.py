"""The modules a fine-tuning task adds to X²-VLM, and how a model folder remembers them.

A task model is the X²-VLM backbone plus, under the official names:
- ``text_decoder``: the VQA answer decoder (``answer_decoder.py``);
- ``cls_head``: an MLP over the fused [CLS] vector(s), the official classifier
  (one vector for video QA, the two image-wise vectors concatenated for NLVR2).
The spec is written as ``task_heads.yaml`` next to ``config.yaml``, so a task model folder loads
back with ``checkpoint.load_model_dir`` like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from x2vlm_core.config_io import from_dict, load_yaml, save_yaml
from x2vlm_core.errors import ConfigError
from x2vlm_core.models.answer_decoder import AnswerDecoder
from x2vlm_core.models.heads import build_mlp

TASK_HEADS_FILE = "task_heads.yaml"


@dataclass
class TaskHeads:
    task: str = ""
    # > 0 adds ``text_decoder`` with this many layers.
    decoder_layers: int = 0
    # > 0 adds ``cls_head`` over this many fused [CLS] vectors, one output per label.
    cls_inputs: int = 0
    # The answers the decoder ranks at test time (VQA), or the classifier's classes.
    labels: list[str] = field(default_factory=list)


def attach_task_heads(model: nn.Module, heads: TaskHeads) -> nn.Module:
    """Add the modules ``heads`` describes (freshly initialised) and remember the spec on the model."""
    config: Any = model.config  # the family's config (torch's stubs type a Module attribute as Tensor | Module)
    width = config.text.hidden_size
    if heads.decoder_layers:
        model.text_decoder = AnswerDecoder(config.text, heads.decoder_layers)
    if heads.cls_inputs:
        if not heads.labels:
            raise ConfigError(f"task {heads.task!r}: a classifier head needs at least one label")
        cls_head = build_mlp(width * heads.cls_inputs, len(heads.labels))
        model.cls_head = cls_head
        for module in cls_head.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
    setattr(model, "task_heads", heads)  # not a Tensor or Module, the only values nn.Module's __setattr__ stub takes
    return model


def task_heads_of(model: object) -> TaskHeads | None:
    return getattr(model, "task_heads", None)


def required_task_heads(model: object) -> TaskHeads:
    """The heads of a task model; a model without any (a pre-trained one) is refused."""
    heads = task_heads_of(model)
    if heads is None:
        raise ConfigError(
            "this model has no task heads (a pre-trained model?); use the model folder written by `x2vlm finetune`"
        )
    return heads


def save_task_heads(model: nn.Module, folder: str | Path) -> None:
    heads = task_heads_of(model)
    if heads is not None:
        save_yaml(heads, Path(folder) / TASK_HEADS_FILE)


def load_task_heads(model: nn.Module, folder: str | Path) -> nn.Module:
    """Attach the heads a model folder records (a pre-trained folder records none)."""
    path = Path(folder) / TASK_HEADS_FILE
    if path.is_file():
        attach_task_heads(model, from_dict(TaskHeads, load_yaml(path), where=str(path)))
    return model
