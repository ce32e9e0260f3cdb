"""What a model family registers, and the interface its models share.

A family (X²-VLM, VLMo, CCLM, ...) is one package under ``x2vlm_core/families/`` whose
``FAMILY`` is a ``ModelFamily``: its config and model classes, presets, the adapter for official
checkpoint layouts, how its official checkpoints' saved configs map onto its own (for
``x2vlm import-official``), its tokenizer, its pre-training recipe, the fine-tuning tasks it
supports (with its own implementation of a task where it differs) and its model-card text. Everything
outside the family's package looks these up (``x2vlm_core.families``) instead of branching on
the family, as torchtitan's ``TrainSpec`` and timm's model registry do.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from x2vlm_core.errors import ConfigError

StateDict = dict[str, torch.Tensor]
Batch = dict[str, Any]
StreamLosses = Callable[..., dict[str, torch.Tensor]]  # (model, batch, with_itm=True) -> {name: loss}
Collate = Callable[[list[dict[str, Any]]], Batch]


@runtime_checkable
class VisionLanguageModel(Protocol):
    """What the stages use of any family's model (besides ``nn.Module``)."""

    config: Any
    new_head_prefixes: tuple[str, ...]  # pre-training heads trained at lr x lr_mult

    def get_vision_embeds(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def get_text_embeds(self, text_ids: torch.Tensor, text_atts: torch.Tensor) -> torch.Tensor: ...

    def forward(
        self, objective: Callable[..., dict[str, torch.Tensor]], *batches: Batch
    ) -> dict[str, torch.Tensor]: ...


class TextEncoder(Protocol):
    """A tokenizer with the model's length: ``text(texts)`` -> ``(ids, attention mask, tokens)``."""

    max_tokens: int

    def __call__(self, texts: list[str], *args: Any, **kwargs: Any) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class PretrainRecipe:
    """How pre-training reads and optimises a family's model (see ``x2vlm_core.train.pretrain``).

    ``streams(train_cfg)``: the streams it can train on (VLMo: per stage); ``default_datasets``:
    the datasets a stream reads when ``train.data.<stream>.datasets`` is unset; ``check_stage``
    refuses a ``train.stage`` the family has no such stage for; ``losses()``: stream -> objective;
    ``collates(model_cfg, train_cfg, region_batch_size)``: stream -> collate; ``start(model,
    train_cfg, init)``: initialise from ``init`` (and freeze what the stage keeps).
    """

    streams: Callable[[Any], tuple[str, ...]]
    default_datasets: Callable[[Any], dict[str, list[str]]]
    check_stage: Callable[[Any, Any], None]
    losses: Callable[[], dict[str, StreamLosses]]
    collates: Callable[[Any, Any, int], dict[str, Collate]]
    start: Callable[[Any, Any, str | None], None]


@dataclass
class OfficialMapping:
    """An official config mapped onto this family's: the config, and one line per mapped setting."""

    config: dict[str, Any] = field(default_factory=dict)  # build_config's input
    lines: list[str] = field(default_factory=list)
    # Weights of ours the official model did not build (its config turned those heads off): they
    # keep their initialisation instead of failing the strict load.
    absent_prefixes: tuple[str, ...] = ()

    def map(self, official_key: str, official_value: Any, field_path: str, value: Any) -> Any:
        """Set ``field_path`` (dotted) to ``value`` and record where it came from."""
        *parents, leaf = field_path.split(".")
        node = self.config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        self.lines.append(f"{official_key} = {official_value!r} -> {field_path} = {value!r}")
        return value


@dataclass(frozen=True)
class OfficialFormat:
    """How a family imports checkpoints written by its official code (``x2vlm import-official``).

    ``recognises(official_cfg)``: the saved config is one of this family's. ``to_config(official_cfg,
    state, files)``: our config for it, where ``files`` finds the files the config names (tokenizer,
    encoder configs; see ``release.official_files``). ``reference_outputs(model, inputs)``: the
    outputs an official parity fixture records, computed by our model under the same names.
    """

    recognises: Callable[[dict[str, Any]], bool]
    to_config: Callable[[dict[str, Any], StateDict, Any], OfficialMapping]
    reference_outputs: Callable[[Any, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def task_variant(task: types.ModuleType, **overrides: Any) -> types.SimpleNamespace:
    """A family's own implementation of a task: the shared task module with some parts replaced."""
    parts = {name: getattr(task, name) for name in dir(task) if not name.startswith("__")}
    unknown = set(overrides) - set(parts)
    if unknown:  # a typo would silently leave the shared part in place
        raise AttributeError(f"task {task.__name__} has no {sorted(unknown)} to replace")
    return types.SimpleNamespace(**{**parts, **overrides, "__name__": task.__name__})


@dataclass(frozen=True)
class ModelFamily:
    name: str  # as a saved config.yaml names it in ``family:``
    title: str  # for people: "X²-VLM"
    config_class: type
    model_class: type
    presets: Mapping[str, dict[str, Any]]
    # task name -> the implementation this family fine-tunes and evaluates with (a tasks module,
    # or a ``task_variant`` of one); tasks left out are refused with the reason in ``refusals``.
    tasks: Mapping[str, Any]
    refusals: Mapping[str, str]
    pretrain: PretrainRecipe
    text_encoder: Callable[[Any, int | None], TextEncoder]
    save_tokenizer: Callable[[Any, Path], None]
    describe: Callable[[Any], str]  # the model card's "what it is" sentence
    languages: str  # what text it reads, for the model card
    build_config: Callable[[dict[str, Any], str], Any]  # (data, where) -> config
    # Official or other foreign checkpoint layouts -> this model's state dict.
    adapt_checkpoint: Callable[[Any, StateDict], StateDict]
    # What fine-tuning trains at lr x lr_mult: the task's new classifier.
    finetune_head_prefixes: Callable[[Any], tuple[str, ...]] = field(
        default=lambda model: ("cls_head",) if hasattr(model, "cls_head") else ()
    )
    # None: this family has no import of official checkpoints (their layout is adapted at --init only).
    official: OfficialFormat | None = None

    def task(self, name: str) -> Any:
        """The family's implementation of task ``name``, or a one-line refusal that says which tasks it does."""
        if name in self.tasks:
            return self.tasks[name]
        from x2vlm_core.tasks import get_task

        get_task(name)  # an unknown task is named as such first
        reason = self.refusals.get(name, "it has no implementation of this task")
        raise ConfigError(
            f"{self.title} cannot do {name}: {reason}; {self.title} models fine-tune and evaluate on "
            f"{', '.join(self.tasks)} only (use a model of a family that supports {name})"
        )
