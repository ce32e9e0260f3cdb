"""Evaluate a fine-tuned model folder on its task's evaluation splits.

Writes to the output folder:
- ``metrics.json``: ``{"task", "metrics": {"<split>_<metric>": value}}`` (plus ``"unavailable"``,
  metric → reason, when some metric could not be computed here);
- ``predictions.jsonl``: one row per query, with its split;
- ``report.html``: metrics and predictions drawn on their images (``report.py``);
- ``results_<split>.json`` for tasks with an upload format (VQA: EvalAI results).

Multilingual splits (samples carrying ``language`` or ``caption_languages``, as the IGLUE and
CCLM readers write them) are evaluated one language at a time (``multilingual.samples_by_language``):
``<split>_<language>_<metric>``, ``<split>_<language>_count``, and ``<split>_avg_<metric>`` over the
languages other than English (IGLUE's average). A split in one language also keeps the plain
``<split>_<metric>`` keys; splits without languages are evaluated as a whole, as before.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from x2vlm_core.config_io import apply_overrides, from_dict
from x2vlm_core.data.shards import iter_shard_samples, list_shards, read_index
from x2vlm_core.errors import DataError
from x2vlm_core.evaluation.multilingual import language_report, samples_by_language, target_languages
from x2vlm_core.evaluation.report import HtmlReport
from x2vlm_core.families import family_of, text_encoder_for
from x2vlm_core.release.model_folder import load_model_dir, read_model_config
from x2vlm_core.tasks import get_task
from x2vlm_core.tasks.result import SplitResult

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.html"


def evaluation_splits(
    expected: tuple[str, ...] | list[str],
    requested: list[str] | None,
    available: dict[str, Any],
    dataset: str,
    shards_root: str | Path,
) -> list[str]:
    """The splits to evaluate: ``requested`` (all must exist), else those of ``expected`` that exist.

    An expected split that is absent is named on stderr: prepare-data leaves a split out of the
    index when every one of its records was rejected (its stats.json lists it under empty_splits).
    """
    if requested:
        missing = [s for s in requested if s not in available]
        if missing:
            raise DataError(
                f"{dataset!r} in {shards_root} has no split {missing} (it has {sorted(available)}); pick among those"
            )
        return list(requested)
    splits = [s for s in expected if s in available]
    if not splits:
        raise DataError(
            f"no evaluation split of {dataset!r} in {shards_root} (wanted one of "
            f"{list(expected)}, found {sorted(available)}); re-run prepare-data with them, "
            "or name the splits to evaluate"
        )
    missing = [s for s in expected if s not in available]
    if missing:
        log.warning(
            "evaluate: %r in %s has no split %s of the task's evaluation splits %s, so it is not evaluated; "
            "see prepare-data's stats.json (empty_splits) and rejects.jsonl",
            dataset,
            shards_root,
            missing,
            list(expected),
        )
    return splits


def run_evaluation(
    task_name: str,
    model_dir: str | Path,
    shards_root: str | Path,
    output_dir: str | Path,
    options: list[str] | None = None,
    dataset: str | None = None,
    splits: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate and write the files above; returns ``{split_metric: value}``.

    ``options`` are ``key=value`` overrides of the task's ``EvalConfig`` (e.g. ``k_test=128``).
    ``dataset`` replaces the task's own (e.g. ``xflickrco`` for retrieval, ``marvl`` for nlvr2), and
    ``splits`` its evaluation splits (all must exist); by default those of the task's that exist.
    """
    get_task(task_name)  # an unknown task is named before the model is read
    task = family_of(read_model_config(model_dir)).task(task_name)  # refuses a task the model cannot do
    dataset = dataset or task.DATASET
    cfg = from_dict(task.EvalConfig, apply_overrides({}, options or []), where=f"{task_name} evaluation options")
    splits = evaluation_splits(
        task.EVAL_SPLITS, splits, read_index(str(shards_root))["datasets"].get(dataset, {}), dataset, shards_root
    )

    model = load_model_dir(model_dir)
    task.check_model(model, model_dir)
    text = text_encoder_for(model.config)  # the model's own tokenizer: WordPiece, or CCLM's sentencepiece
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = HtmlReport(task_name, str(model_dir))
    metrics: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    with open(out / PREDICTIONS_FILE, "w") as pred_file:
        for split in splits:
            samples = list(iter_shard_samples(list_shards(str(shards_root), dataset, split)))
            by_language = samples_by_language(samples)
            groups: dict[str | None, list[dict[str, Any]]] = (
                dict(by_language.items()) if by_language else {None: samples}
            )
            results = {language: task.evaluate(model, group, text, cfg) for language, group in groups.items()}
            split_metrics = _split_metrics(
                split, results, {language: len(group) for language, group in groups.items()}, len(samples)
            )
            metrics.update(split_metrics)
            if None not in groups:
                report.add_language_table(
                    split,
                    {language: r.metrics for language, r in results.items() if language is not None},
                    {
                        k.removeprefix(f"{split}_avg_"): v
                        for k, v in split_metrics.items()
                        if k.startswith(f"{split}_avg_")
                    },
                )
            for language, result in results.items():
                name = split if language is None else f"{split}_{language}"
                tag = {} if language is None else {"language": language}
                unavailable.update({f"{name}_{metric}": reason for metric, reason in result.unavailable.items()})
                for row in result.predictions:
                    pred_file.write(json.dumps({"split": split, **tag, **row}) + "\n")
                if hasattr(task, "submission"):
                    (out / f"results_{name}.json").write_text(json.dumps(task.submission(result.predictions)))
                title = split if len(groups) == 1 else f"{split} · {language}"
                report.add_split(
                    title, result.metrics, result.unavailable, task.report_section(groups[language], result.predictions)
                )
                log.info(json.dumps({"event": f"evaluate-{task_name}", "split": split, **tag, **result.metrics}))
    written: dict[str, Any] = {"task": task_name, "metrics": metrics}
    if unavailable:
        written["unavailable"] = unavailable
    (out / METRICS_FILE).write_text(json.dumps(written, indent=2))
    report.write(out / REPORT_FILE)
    return metrics


def _split_metrics(
    split: str, results: dict[str | None, SplitResult], counts: dict[str | None, int], records: int
) -> dict[str, float]:
    """``{split}_{metric}`` of a split without languages (language None); per language and averaged otherwise.

    ``counts``: the samples evaluated per language; ``records``: the split's records (a record
    captioned in two languages is evaluated in both, and counted once here).
    """
    if None in results:
        return {
            **{f"{split}_{name}": value for name, value in results[None].metrics.items()},
            f"{split}_count": records,
        }
    per_language = {language: result.metrics for language, result in results.items() if language is not None}
    out = {
        f"{split}_{name}": value
        for name, value in language_report(per_language, target_languages(per_language)).items()
    }
    out.update({f"{split}_{language}_count": count for language, count in counts.items()})
    if len(results) == 1:  # one language: the split's plain keys too
        (only,) = results.values()
        out.update({f"{split}_{name}": value for name, value in only.metrics.items()})
    out[f"{split}_count"] = records
    return out
