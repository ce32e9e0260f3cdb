"""Checks of a run's inputs, made before any work so that a run fails within seconds, naming every
problem, instead of after an hour of data preparation or training.

``validate_run`` is the one check: both pipelines' validate-inputs steps and the CLI's training
commands call it. It runs every check, collects what each one refuses, and raises one
``RunCheckError`` that lists them all, one line each.
"""

from __future__ import annotations

import functools
import json
import math
import reprlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from x2vlm_core import storage
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.data.sources import load_sources
from x2vlm_core.errors import ConfigError, DataError, RunCheckError, X2VLMError
from x2vlm_core.evaluation.multilingual import FEW_SHOT_SPLIT
from x2vlm_core.release.model_folder import CONFIG
from x2vlm_core.release.sharded_weights import WEIGHTS, WEIGHTS_INDEX
from x2vlm_core.run_config import load_run_config
from x2vlm_core.tasks import TASKS, get_task

# Beam runners that run in the prepare-data step's own pod.
LOCAL_BEAM_RUNNERS = frozenset({"DirectRunner", "BundleBasedDirectRunner", "FnApiRunner", "PrismRunner"})


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
        raise ConfigError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")


def check_tasks(tasks: list[str]) -> None:
    if not tasks:
        raise ConfigError(f"the task list is empty; pick from: {', '.join(sorted(TASKS))}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; available tasks: {', '.join(sorted(TASKS))}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"the task list {tasks} names a task twice; each task runs once")


def check_learning_rate(learning_rate: float) -> None:
    if not isinstance(learning_rate, (int, float)) or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ConfigError(f"learning_rate must be a number > 0, got {learning_rate!r} (e.g. 1e-4)")


def check_model_folder(uri: str, what: str = "base model") -> None:
    if not uri:
        raise ConfigError(f"the {what} URI is empty; pass a model folder (gs://... or a path)")
    missing = [] if storage.exists(storage.join(uri, CONFIG)) else [CONFIG]
    # Weights: one file, or shards listed in an index (large published releases).
    if not any(storage.exists(storage.join(uri, name)) for name in (WEIGHTS, WEIGHTS_INDEX)):
        missing.append(WEIGHTS)
    if missing:
        raise DataError(
            f"the {what} URI {uri} does not exist or is not a model folder ({', '.join(missing)} "
            "missing); pass the Model URI of a pretrain or finetune step, or a published release folder"
        )


def read_shards_index(uri: str) -> dict[str, Any]:
    if not uri:
        raise ConfigError("the shards URI is empty; pass a prepare-data output folder (gs://... or a path)")
    index_uri = storage.join(uri, INDEX_FILE)
    if not storage.exists(index_uri):
        raise DataError(f"the shards URI {uri} has no {INDEX_FILE}; pass the Dataset URI of a prepare-data step")
    try:
        return json.loads(storage.read_bytes(index_uri))
    except json.JSONDecodeError as error:
        raise DataError(f"{index_uri} is not valid JSON ({error}); re-run prepare-data") from None


def check_full_run(
    sources: str,
    tasks: list[str],
    model_preset: str,
    pretrain_steps: int,
    finetune_steps: int,
    pretrain_batch_size: int,
    finetune_batch_size: int,
    num_nodes: int,
    gpus_per_node: int,
    pretrain_overrides: list[str],
    finetune_overrides: list[str],
    output_root: str,
    checkpoint_root: str | None = None,
    data_root: str | None = None,
    beam_options: Sequence[str] = (),
    finetune_task_overrides: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """The full pipeline's parameters, with the training overrides its pretrain and finetune steps will apply
    (``finetune_task_overrides``: a task's own, after the shared ones).

    ``checkpoint_root`` (empty or None: none) is where pretrain and finetune keep their checkpoints,
    ``data_root`` (empty or None: none) where prepare-data keeps the shards, with ``beam_options``."""
    found = []
    for name, value in (
        ("pretrain_steps", pretrain_steps),
        ("finetune_steps", finetune_steps),
        ("pretrain_batch_size", pretrain_batch_size),
        ("finetune_batch_size", finetune_batch_size),
        ("num_nodes", num_nodes),
        ("gpus_per_node", gpus_per_node),
    ):
        try:
            _positive_int(name, value)
        except ConfigError as error:
            found.append(error)
    raise_all(found)  # the counts feed the checks below
    validate_run(
        tasks=tasks,
        model_preset=model_preset,
        sources=sources,
        output_root=output_root,
        checkpoint_root=checkpoint_root or None,
        data_root=data_root or None,
        beam_options=beam_options,
        gpus_per_node=gpus_per_node,
        world_size=num_nodes * gpus_per_node,
        finetune_world_size=gpus_per_node,  # fine-tuning runs on one node
        pretrain_overrides=[
            f"train.steps={pretrain_steps}",
            f"train.batch_size={pretrain_batch_size}",
            *pretrain_overrides,
        ],
        finetune_overrides=[
            f"train.steps={finetune_steps}",
            f"train.batch_size={finetune_batch_size}",
            *finetune_overrides,
        ],
        task_overrides=finetune_task_overrides,
    )


def finetune_overrides(
    learning_rate: float, warmup_steps: int, steps: int, batch_size: int, config_overrides: list[str]
) -> list[str]:
    """The training overrides of a single-task run, as its finetune step applies them."""
    return [
        f"train.steps={int(steps)}",
        f"train.batch_size={int(batch_size)}",
        f"train.optim.lr={learning_rate!r}",
        f"train.optim.warmup_steps={int(warmup_steps)}",
        *config_overrides,
    ]


def check_finetune_request(
    task: str,
    base_model_uri: str,
    shards_uri: str,
    learning_rate: float,
    warmup_steps: int,
    steps: int,
    batch_size: int,
    gpus_per_node: int,
    config_overrides: list[str],
    dataset: str = "",
    few_shot: int = 0,
    output_root: str | None = None,
    checkpoint_root: str | None = None,
) -> list[str]:
    """The single-task run's inputs; returns the config overrides the finetune step applies.

    ``dataset`` (empty: the task's own) must hold the split the run trains on: ``train``, or
    ``few_shot`` for a few-shot run.
    """
    found = []
    for name, value, minimum in (
        ("steps", steps, 1),
        ("batch_size", batch_size, 1),
        ("gpus_per_node", gpus_per_node, 1),
        ("warmup_steps", warmup_steps, 0),
        ("few_shot", few_shot, 0),
    ):
        try:
            _positive_int(name, value, minimum)
        except ConfigError as error:
            found.append(error)
    try:
        check_learning_rate(learning_rate)
    except ConfigError as error:
        found.append(error)
    raise_all(found)
    overrides = finetune_overrides(learning_rate, warmup_steps, steps, batch_size, config_overrides)
    validate_run(
        tasks=[task],
        base_model=base_model_uri,
        shards=shards_uri,
        dataset=dataset,
        few_shot=few_shot,
        finetune_overrides=overrides,
        world_size=gpus_per_node,
        output_root=output_root,
        checkpoint_root=checkpoint_root or None,
    )
    return overrides[2:]


def check_writable(root: str, what: str = "output root") -> None:
    """Write and delete a probe object under ``root``, as publishing (or checkpointing) will write there."""
    probe = storage.join(root, f".x2vlm-write-probe-{uuid.uuid4().hex}")
    try:
        storage.write_bytes(probe, b"probe")
        storage.delete(probe)
    except (OSError, X2VLMError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"the {what} {root} is not writable ({first}); create it, or grant this run's "
            "service account write access (roles/storage.objectAdmin on the bucket)"
        ) from None


def train_config_checks(cfg: Any, world_size: int, what: str, device: str | None) -> list[Callable[[], Any]]:
    """What DeepSpeed and the loop would refuse later, one check each: precision, compile, ITM negatives, steps, warm-up,
    learning rate, the batch split over the processes, the ZeRO stage."""
    import torch

    from x2vlm_core.train.engine import (
        check_itm_negatives,
        deepspeed_config,
        micro_batch_size,
        resolve_compile,
        resolve_precision,
    )

    target = torch.device(device or "cpu")

    def deepspeed() -> None:  # the ZeRO stage and train.deepspeed, whatever the batch split
        precision = resolve_precision(cfg, target) if cfg.precision in ("auto", "fp32", "bf16") else "fp32"
        deepspeed_config(cfg, 1, precision)

    return [
        lambda: resolve_precision(cfg, target),
        lambda: resolve_compile(cfg, target),
        lambda: check_itm_negatives(cfg),
        lambda: micro_batch_size(cfg.batch_size, cfg, world_size),
        lambda: _positive_int("train.steps", cfg.steps),
        lambda: _positive_int("train.optim.warmup_steps", cfg.optim.warmup_steps, minimum=0),
        lambda: check_learning_rate(cfg.optim.lr),
        deepspeed,
    ]


def model_config_at(uri: str) -> Any:
    """The model config of a model folder, local or gs:// (only its config.yaml is read)."""
    import yaml

    from x2vlm_core.families import config_from_dict

    check_model_folder(uri)
    try:
        data = yaml.safe_load(storage.read_bytes(storage.join(uri, CONFIG)))
    except yaml.YAMLError as error:
        raise ConfigError(f"{storage.join(uri, CONFIG)} is not valid YAML: {str(error).splitlines()[0]}") from None
    return config_from_dict(data or {}, where=storage.join(uri, CONFIG))


def validate_run(
    *,
    tasks: Sequence[str] = (),
    model_preset: str | None = None,
    init_model: Any = None,
    base_model: str | None = None,
    pretrain_overrides: Sequence[str] = (),
    finetune_overrides: Sequence[str] = (),
    task_overrides: Mapping[str, Sequence[str]] | None = None,
    world_size: int = 1,
    finetune_world_size: int | None = None,
    device: str | None = None,
    sources: str | None = None,
    shards: str | None = None,
    dataset: str = "",
    few_shot: int = 0,
    output_root: str | None = None,
    run_config: str | None = None,
    checkpoint_root: str | None = None,
    data_root: str | None = None,
    beam_options: Sequence[str] = (),
    gpus_per_node: int | None = None,
) -> None:
    """Check a whole run before any work; raises ``RunCheckError`` naming every problem found.

    Pre-training is checked when ``model_preset`` is given (with ``pretrain_overrides``), or
    ``init_model``, the config of the model folder it starts from without a preset; fine-tuning
    of ``tasks`` from that model or from ``base_model`` (a model folder) with ``finetune_overrides``,
    then each task's own ``task_overrides`` after them.
    ``world_size``: training processes (batch sizes must split evenly over them; fine-tuning's own
    ``finetune_world_size`` when it differs, as a one-node fine-tune after multi-node pre-training); ``device``: where
    training runs, when known ("cuda", "cpu"). ``sources`` must be readable, ``shards`` must hold the
    split a single-task run trains on, ``output_root``, ``checkpoint_root`` and ``data_root`` (where
    prepare-data keeps the shards) must take a write; a remote Beam runner in ``beam_options`` needs a
    gs:// ``data_root``. ``gpus_per_node``: processes per node; when ``world_size`` is more, the run
    spans nodes and every root must be gs://, which every node reaches. ``run_config``: a run config YAML (``--config``)
    under the overrides.
    """
    found: list[X2VLMError] = []
    labels: dict[int, str] = {}

    def check(action: Callable[[], Any], stage: str = "") -> Any:
        try:
            return action()
        except X2VLMError as error:
            found.append(error)
            labels[id(error)] = stage
            return None

    if sources is not None:
        check(lambda: check_sources(sources))
    model_cfg = None
    if model_preset or init_model is not None:
        loaded = check(
            lambda: load_run_config(run_config, model_preset, list(pretrain_overrides), base_model=init_model)
        )
        if loaded is not None:
            model_cfg, pretrain_cfg = loaded
            for train_check in train_config_checks(pretrain_cfg, world_size, "pre-training", device):
                check(train_check, "pre-training")
            check(lambda: _check_pretrain_streams(model_cfg, pretrain_cfg, world_size), "pre-training")
    elif base_model is not None:
        model_cfg = check(lambda: model_config_at(base_model))
    known = None
    if tasks or base_model is not None:

        def tasks_known() -> bool:
            check_tasks(list(tasks))
            return True

        known = check(tasks_known)
        if known and model_cfg is not None:
            from x2vlm_core.families import family_of

            def family_does(task: str) -> Any:
                return family_of(model_cfg).task(task)

            for task in tasks:
                check(functools.partial(family_does, task))

        def check_finetune_config(overrides: list[str], stage: str, load_stage: str) -> None:
            load = functools.partial(load_run_config, run_config, None, overrides, model_needed=False)
            loaded = check(load, load_stage)
            if loaded is not None:
                for train_check in train_config_checks(loaded[1], finetune_world_size or world_size, stage, device):
                    check(train_check, stage)

        check_finetune_config(list(finetune_overrides), "fine-tuning", load_stage="")
        for task, extra in (task_overrides or {}).items():
            stage = f"fine-tuning {task}"
            if task not in tasks:
                check(functools.partial(_not_a_run_task, task, tasks), stage)
            elif not isinstance(extra, (list, tuple)) or not all(isinstance(item, str) for item in extra):
                check(functools.partial(_not_a_list_of_overrides, task, extra), stage)
            else:
                check_finetune_config([*finetune_overrides, *extra], stage, load_stage=stage)
    if shards is not None and len(tasks) == 1 and known:
        check(lambda: check_training_split(shards, tasks[0], dataset, few_shot))
    if output_root is not None:
        check(lambda: check_writable(output_root))
    if checkpoint_root is not None:
        check(lambda: check_writable(checkpoint_root, "checkpoint root"))
    if data_root is not None:
        check(lambda: check_writable(data_root, "data root"))
    check(lambda: check_beam_output(beam_options, data_root))
    if gpus_per_node and world_size > gpus_per_node:
        roots = (("output root", output_root), ("checkpoint root", checkpoint_root), ("data root", data_root))
        for what, root in roots:
            if root is not None:
                check(functools.partial(check_multi_node_root, root, what, world_size, gpus_per_node))
    raise_all(found, labels)


def _not_a_run_task(task: str, tasks: Sequence[str]) -> None:
    raise ConfigError(
        f"finetune_task_overrides names {task!r}, which is not one of this run's tasks {list(tasks)}; "
        "remove it or add the task"
    )


def _not_a_list_of_overrides(task: str, value: Any) -> None:
    raise ConfigError(
        f"finetune_task_overrides[{task!r}] is {reprlib.repr(value)}; give a list of KEY=VALUE strings, "
        'e.g. ["train.steps=1200"]'
    )


def check_multi_node_root(root: str, what: str, world_size: int, gpus_per_node: int) -> None:
    """A root that spans nodes must be gs://: a local path or minio:// is not the same place on every node."""
    if not storage.is_gcs(root):
        raise ConfigError(
            f"the {what} {root} is not gs://, but this run spans {math.ceil(world_size / gpus_per_node)} "
            f"nodes ({world_size} processes, {gpus_per_node} per node) that must all reach it; "
            "use a gs://BUCKET/PREFIX"
        )


def check_beam_output(beam_options: Sequence[str], data_root: str | None) -> None:
    """Workers of a remote Beam runner cannot write into the step's local artifact folder: they need a gs:// data root."""
    runner = beam_runner(beam_options)
    if runner and runner not in LOCAL_BEAM_RUNNERS and not (data_root and storage.is_gcs(data_root)):
        raise ConfigError(
            f"beam_options run prepare-data on {runner}, whose workers cannot write to this step's "
            f"local folder{f' or {data_root}' if data_root else ''}; set data_root to a gs://BUCKET/PREFIX"
        )


def beam_runner(beam_options: Sequence[str]) -> str:
    """The ``--runner`` that Beam flags name ("" when none)."""
    for index, option in enumerate(beam_options):
        if option.startswith("--runner="):
            return option.split("=", 1)[1]
        if option == "--runner" and index + 1 < len(beam_options):
            return beam_options[index + 1]
    return ""


def raise_all(found: Sequence[X2VLMError], labels: dict[int, str] | None = None) -> None:
    """One problem raises as itself (its own type and line); several as one ``RunCheckError``, each line
    prefixed with the stage it concerns when one was given."""
    labels = labels or {}
    unique = list(
        dict.fromkeys((f"{labels[id(e)]}: " if labels.get(id(e)) else "") + str(e).replace("\n", " ") for e in found)
    )
    if len(unique) == 1:
        raise found[0]
    if unique:
        raise RunCheckError(unique)


def _check_pretrain_streams(model_cfg: Any, cfg: Any, world_size: int) -> None:
    from x2vlm_core.train.pretrain import check_pretrain_config

    check_pretrain_config(model_cfg, cfg, world_size)


def check_sources(sources: str) -> None:
    """The sources file as prepare-data loads it (the same loader): its entries, and every path they name."""
    if not sources:
        raise ConfigError("sources is empty; pass the sources YAML's path or gs:// URI as seen from the cluster")
    load_sources(sources)


def check_training_split(shards_uri: str, task: str, dataset: str = "", few_shot: int = 0) -> None:
    """The shards hold the split the run trains on: ``train``, or ``few_shot`` for a few-shot run."""
    index = read_shards_index(shards_uri)
    spec = get_task(task)
    dataset = dataset or spec.DATASET
    split = FEW_SHOT_SPLIT if few_shot else spec.TRAIN_SPLIT
    splits = index.get("datasets", {}).get(dataset, {})
    if split not in splits:
        raise DataError(
            f"the shards at {shards_uri} have no {dataset!r} {split!r} split, which "
            f"task {task!r} trains on (found: {sorted(splits) or 'none'}); prepare it first"
        )
