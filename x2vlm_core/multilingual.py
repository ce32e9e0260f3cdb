"""Per-language results and the cross-lingual transfer protocol (IGLUE, CCLM).

- zero-shot: fine-tune on English, evaluate each language's test set as it is;
- few-shot: continue from the English model with N examples per language
  (``few_shot_sample``: the same N for a seed, whatever order the records came in);
- every metric is reported per language as ``{language}_{metric}``, with ``avg_{metric}``
  over the languages asked for (IGLUE averages the target languages, English left out).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from x2vlm_core.errors import DataError

T = TypeVar("T")


def record_language(record: Mapping[str, Any]) -> str:
    """The language of a task record: ``language``, or the one language of its captions."""
    if "language" in record:
        return record["language"]
    tags = set(record.get("caption_languages") or [])
    if len(tags) != 1:
        raise DataError(f"record {record.get('key', '?')} has captions in {sorted(tags) or 'no tagged language'}; "
                        "per-language results need one language per record")
    return tags.pop()


def group_by_language(items: Iterable[T], language_of: Callable[[T], str] = record_language) -> dict[str, list[T]]:
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(language_of(item), []).append(item)
    return dict(sorted(groups.items()))


def language_report(results: Mapping[str, Mapping[str, float]],
                    average_over: Sequence[str] | None = None) -> dict[str, float]:
    """``{language: {metric: value}}`` → ``{language}_{metric}`` and ``avg_{metric}``.

    ``average_over`` picks the languages of the average (default: all); a metric missing in one of
    them gets no average rather than one over fewer languages.
    """
    out = {f"{language}_{metric}": float(value)
           for language, metrics in sorted(results.items()) for metric, value in sorted(metrics.items())}
    languages = list(average_over) if average_over is not None else sorted(results)
    unknown = [language for language in languages if language not in results]
    if unknown:
        raise DataError(f"cannot average over {unknown}: there are results for {sorted(results)} only")
    if languages:
        shared = set.intersection(*(set(results[language]) for language in languages))
        for metric in sorted(shared):
            out[f"avg_{metric}"] = sum(float(results[language][metric]) for language in languages) / len(languages)
    return out


def accuracy_by_language(predictions: Sequence[Any], labels: Sequence[Any], languages: Sequence[str],
                         average_over: Sequence[str] | None = None) -> dict[str, float]:
    """Classification accuracy (XVNLI, MaRVL, xGQA) per language, in percent, plus the average."""
    if not len(predictions) == len(labels) == len(languages):
        raise DataError(f"{len(predictions)} predictions, {len(labels)} labels and {len(languages)} languages; "
                        "give one of each per example")
    hits: dict[str, list[int]] = {}
    for prediction, label, language in zip(predictions, labels, languages):
        counts = hits.setdefault(language, [0, 0])
        counts[0] += int(prediction == label)
        counts[1] += 1
    return language_report({language: {"accuracy": 100.0 * right / total}
                            for language, (right, total) in hits.items()}, average_over)


def few_shot_sample(records: Iterable[T], shots: int, seed: int, languages: Sequence[str] | None = None,
                    language_of: Callable[[T], str] = record_language,
                    key_of: Callable[[T], str] = lambda record: record["key"]) -> list[T]:
    """``shots`` records of each language (all languages, or ``languages``), drawn with ``seed``.

    Records are put in key order first, so the draw does not depend on the order they were read in;
    each language has its own stream, so adding a language leaves the others' shots unchanged.
    """
    if shots < 1:
        raise DataError(f"few-shot needs at least 1 shot per language, got {shots}")
    groups = group_by_language(records, language_of)
    wanted = list(languages) if languages is not None else list(groups)
    chosen: list[T] = []
    for language in wanted:
        pool = sorted(groups.get(language, []), key=key_of)
        if len(pool) < shots:
            raise DataError(f"language {language!r} has {len(pool)} training examples, fewer than {shots} shots; "
                            "lower the shots or add data for it")
        chosen.extend(random.Random(f"{seed}:{language}").sample(pool, shots))
    return chosen
