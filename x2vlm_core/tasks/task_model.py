"""Building a task model from a pre-trained model folder: backbone, task heads, then the weights.

The heads are attached before loading, so a folder that already holds them (a fine-tuned task
model, or an official task checkpoint) fills them too; heads the folder lacks keep their fresh
initialisation and are reported back, for the task to initialise (e.g. the VQA decoder from the
fusion layers).

Which tasks a model can do is its family's (``ModelFamily.tasks``): ``model_check`` refuses the
others with the family's reason, before any work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, family_of
from x2vlm_core.models.task_heads import TaskHeads, attach_task_heads, load_task_heads, task_heads_of
from x2vlm_core.release.model_folder import init_from, read_model_config

log = logging.getLogger(__name__)


def build_task_model(
    pretrained: str | Path, heads: TaskHeads | None = None, frame_len: int = 0
) -> tuple[Any, list[str]]:
    """Returns the model and the parameter names it kept at their initialisation.

    ``frame_len`` > 0 turns an image model into a video model of that many frames (a new
    frame position embedding); a video model keeps its own.
    """
    config = read_model_config(pretrained)
    if frame_len and not config.frame_len:
        config.frame_len = frame_len
    model = create_model(config)
    if heads is not None:
        attach_task_heads(model, heads)
    else:
        load_task_heads(model, pretrained)
    missing = init_from(model, pretrained)
    if missing:
        log.info("initialised %d tensors freshly (not in %s), e.g. %s", len(missing), pretrained, missing[:3])
    return model, missing


def model_check(task: str, task_heads: str | None = None, video: bool = False) -> Callable[[Any, str | Path], None]:
    """A check that a model folder fits ``task`` before evaluating it: its family does the task (with
    the family's own check where it has its own implementation), the task's heads, a video model."""

    def check(model: Any, model_dir: str | Path) -> None:
        implementation = family_of(model.config).task(task)
        if implementation.check_model is not check:
            return implementation.check_model(model, model_dir)
        heads = task_heads_of(model)
        if task_heads and (heads is None or heads.task != task_heads):
            found = f"heads for {heads.task!r}" if heads else "no task heads"
            raise ConfigError(
                f"{model_dir} has {found}, not the {task_heads!r} heads; evaluate the model folder "
                f"written by `x2vlm finetune --task {task_heads}`"
            )
        if video and not model.config.frame_len:
            raise ConfigError(
                f"{model_dir} is an image model (frame_len 0); evaluate the model folder written by "
                "a video task's fine-tuning"
            )

    return check
