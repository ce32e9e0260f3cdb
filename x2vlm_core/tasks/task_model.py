"""Building a task model from a pre-trained model folder: backbone, task heads, then the weights.

The heads are attached before loading, so a folder that already holds them (a fine-tuned task
model, or an official task checkpoint) fills them too; heads the folder lacks keep their fresh
initialisation and are reported back, for the task to initialise (e.g. the VQA decoder from the
fusion layers).

VLMo (one multiway encoder) fine-tunes retrieval, VQA and NLVR2 with its own heads
(``VLMo.add_task_head``, recorded in its config); the other tasks refuse it before any work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from torch import nn

from x2vlm_core.release.model_folder import init_from, read_model_config
from x2vlm_core.models.registry import create_model
from x2vlm_core.errors import ConfigError
from x2vlm_core.models.task_heads import TaskHeads, attach_task_heads, load_task_heads, task_heads_of
from x2vlm_core.models.vlmo import VLMo
from x2vlm_core.models.vlmo_config import VLMoConfig
from x2vlm_core.models.xvlm import XVLM

log = logging.getLogger(__name__)

VLMO_TASKS = ("retrieval", "vqa", "nlvr2")


def is_vlmo(model: nn.Module) -> bool:
    return isinstance(model, VLMo)


def is_vlmo_folder(pretrained: str | Path) -> bool:
    return isinstance(read_model_config(pretrained), VLMoConfig)


def refuse_vlmo(config: object, reason: str | None) -> None:
    """Fail clearly when a task VLMo cannot do (``reason``, e.g. "do grounding: it has no box head") meets VLMo."""
    if reason and isinstance(config, VLMoConfig):
        raise ConfigError(f"VLMo cannot {reason}; VLMo models fine-tune and evaluate on {', '.join(VLMO_TASKS)} "
                          "only (use an X²-VLM model for this task)")


def build_task_model(pretrained: str | Path, heads: TaskHeads | None = None,
                     frame_len: int = 0, vlmo_refusal: str | None = None) -> tuple[XVLM, list[str]]:
    """Returns the model and the parameter names it kept at their initialisation.

    ``frame_len`` > 0 turns an image model into a video model of that many frames (a new
    frame position embedding); a video model keeps its own. ``vlmo_refusal``: why a VLMo
    folder cannot do this task (see ``refuse_vlmo``).
    """
    config = read_model_config(pretrained)
    refuse_vlmo(config, vlmo_refusal)
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


def build_vlmo_task_model(pretrained: str | Path, head: str | None = None,
                          answers: list[str] | None = None) -> VLMo:
    """A VLMo from its folder with the task head ``head`` ("vqa", "nlvr2"), kept if the folder has it.

    ``answers``: the VQA answer list, one classifier output each.
    """
    config = read_model_config(pretrained)
    if answers is not None:
        config.vqa_answers, config.vqa_answer_list = len(answers), list(answers)
    model = create_model(config)
    if head is not None:
        model.add_task_head(head)
    missing = init_from(model, pretrained)
    if missing:
        log.info("initialised %d tensors freshly (not in %s), e.g. %s", len(missing), pretrained, missing[:3])
    return model


def model_check(task_heads: str | None = None, video: bool = False,
                vlmo_refusal: str | None = None) -> Callable[[XVLM, str | Path], None]:
    """A check that a model folder fits a task before evaluating it: the task's heads, a video model."""
    def check(model: XVLM, model_dir: str | Path) -> None:
        refuse_vlmo(model.config, vlmo_refusal)
        if is_vlmo(model):
            if task_heads and task_heads not in model.config.task_heads:
                raise ConfigError(f"{model_dir} is a VLMo without the {task_heads!r} head; evaluate the model folder "
                                  f"written by `x2vlm finetune --task {task_heads}`")
            return
        heads = task_heads_of(model)
        if task_heads and (heads is None or heads.task != task_heads):
            found = f"heads for {heads.task!r}" if heads else "no task heads"
            raise ConfigError(f"{model_dir} has {found}, not the {task_heads!r} heads; evaluate the model folder "
                              f"written by `x2vlm finetune --task {task_heads}`")
        if video and not model.config.frame_len:
            raise ConfigError(f"{model_dir} is an image model (frame_len 0); evaluate the model folder written by "
                              "a video task's fine-tuning")
    return check
