"""Fine-tuning tasks, one module each, all with the same parts:

- ``DATASET``, ``TRAIN_SPLIT``, ``EVAL_SPLITS``: where the task's data lies in the shards
  (evaluation uses the splits that exist);
- ``build_model(pretrained, shards_root)``: the task model (backbone + task heads), initialised from
  a pre-trained model folder (a task that reads its data to build it, as VQA its answer list, also
  takes ``dataset``: the one fine-tuned on, ``DATASET`` unless the run names another);
- ``train_collate(samples, text, config, rng, **collate_options(model))``: a training batch;
- ``objective(model, batch)``: ``{loss name: loss}``, summed by the trainer;
- ``EvalConfig`` and ``evaluate(model, samples, text, cfg)``: a ``SplitResult`` for one split;
- ``check_model(model, model_dir)``: fails clearly when a model folder does not fit the task;
- ``report_section(samples, predictions)``: that split's part of the HTML report;
- optionally ``collate_options(model)`` and ``submission(predictions)`` (a results file to upload).
"""

from __future__ import annotations

from types import ModuleType

from x2vlm_core.errors import ConfigError
from x2vlm_core.tasks import (
    captioning,
    grounding,
    grounding_weakly,
    nlvr2,
    retrieval,
    video_qa,
    video_retrieval,
    vqa,
    xvnli,
)

TASKS: dict[str, ModuleType] = {
    "retrieval": retrieval,
    "grounding": grounding,
    "grounding_weakly": grounding_weakly,
    "vqa": vqa,
    "nlvr2": nlvr2,
    "captioning": captioning,
    "video_retrieval": video_retrieval,
    "video_qa": video_qa,
    "xvnli": xvnli,
}


def get_task(name: str) -> ModuleType:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
