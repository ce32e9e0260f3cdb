"""Per-language results and the cross-lingual transfer protocol (IGLUE, CCLM).

- zero-shot: fine-tune on English, evaluate each language's test set as it is;
- few-shot: continue from the English model with N examples per language
  (``few_shot_sample``: the same N for a seed, whatever order the records came in);
- every metric is reported per language as ``{language}_{metric}``, with ``avg_{metric}``
  over the languages asked for (IGLUE averages the target languages, English left out);
- ``samples_by_language`` splits evaluation samples into those language groups; a retrieval
  record with captions in several languages joins each of its languages' groups, holding only
  that language's captions, so each language is scored against its own captions alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from x2vlm_core.errors import DataError

T = TypeVar("T", bound=Mapping[str, Any])  # a task record

# The split few-shot examples come from: each target language's training data (IGLUE's few-shot files).
FEW_SHOT_SPLIT = "few_shot"

SOURCE_LANGUAGE = "en"  # the language tasks are fine-tuned in; IGLUE averages the others


def record_language(record: Mapping[str, Any]) -> str:
    """The language of a task record: ``language``, or the one language of its captions."""
    if "language" in record:
        return record["language"]
    tags = set(record.get("caption_languages") or [])
    if len(tags) != 1:
        raise DataError(
            f"record {record.get('key', '?')} has captions in {sorted(tags) or 'no tagged language'}; "
            "per-language results need one language per record"
        )
    return tags.pop()


def group_by_language(items: Iterable[T], language_of: Callable[[T], str] = record_language) -> dict[str, list[T]]:
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(language_of(item), []).append(item)
    return dict(sorted(groups.items()))


def carries_language(record: Mapping[str, Any]) -> bool:
    return "language" in record or "caption_languages" in record


def samples_by_language(samples: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]] | None:
    """``{language: samples}`` of shard samples (``{"key", "meta", ...}``), or None when none carries a language.

    A sample with ``caption_languages`` is copied into each of its languages' groups with only the
    captions of that language; one with ``language`` goes to that group as it is.
    """
    tagged = [carries_language(sample["meta"]) for sample in samples]
    if not any(tagged):
        return None
    if not all(tagged):
        untagged = next(sample["key"] for sample, has in zip(samples, tagged) if not has)
        raise DataError(
            f"sample {untagged} carries no language while others of its split do; prepare every "
            "source of a split with its language (the multilingual readers set it)"
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        meta = sample["meta"]
        if "language" in meta:
            groups.setdefault(meta["language"], []).append(sample)
            continue
        captions, tags = meta.get("captions") or [], meta["caption_languages"]
        if len(captions) != len(tags):
            raise DataError(
                f"sample {sample['key']} has {len(captions)} captions and {len(tags)} caption languages; "
                "re-run prepare-data, which keeps one language per caption"
            )
        for language in dict.fromkeys(tags):  # first-seen order
            keep = [i for i, tag in enumerate(tags) if tag == language]
            own = {**meta, "captions": [captions[i] for i in keep], "caption_languages": [language] * len(keep)}
            groups.setdefault(language, []).append({**sample, "meta": own})
    return dict(sorted(groups.items()))


def target_languages(languages: Iterable[str]) -> list[str]:
    """The languages IGLUE averages over: every one but the fine-tuning language."""
    return [language for language in languages if language != SOURCE_LANGUAGE]


def language_report(
    results: Mapping[str, Mapping[str, float]], average_over: Sequence[str] | None = None
) -> dict[str, float]:
    """``{language: {metric: value}}`` → ``{language}_{metric}`` and ``avg_{metric}``.

    ``average_over`` picks the languages of the average (default: all); a metric missing in one of
    them gets no average rather than one over fewer languages.
    """
    out = {
        f"{language}_{metric}": float(value)
        for language, metrics in sorted(results.items())
        for metric, value in sorted(metrics.items())
    }
    languages = list(average_over) if average_over is not None else sorted(results)
    unknown = [language for language in languages if language not in results]
    if unknown:
        raise DataError(f"cannot average over {unknown}: there are results for {sorted(results)} only")
    if languages:
        shared = set.intersection(*(set(results[language]) for language in languages))
        for metric in sorted(shared):
            out[f"avg_{metric}"] = sum(float(results[language][metric]) for language in languages) / len(languages)
    return out


def accuracy_by_language(
    predictions: Sequence[Any],
    labels: Sequence[Any],
    languages: Sequence[str],
    average_over: Sequence[str] | None = None,
) -> dict[str, float]:
    """Classification accuracy (XVNLI, MaRVL, xGQA) per language, in percent, plus the average."""
    if not len(predictions) == len(labels) == len(languages):
        raise DataError(
            f"{len(predictions)} predictions, {len(labels)} labels and {len(languages)} languages; "
            "give one of each per example"
        )
    hits: dict[str, list[int]] = {}
    for prediction, label, language in zip(predictions, labels, languages):
        counts = hits.setdefault(language, [0, 0])
        counts[0] += int(prediction == label)
        counts[1] += 1
    return language_report(
        {language: {"accuracy": 100.0 * right / total} for language, (right, total) in hits.items()}, average_over
    )


def few_shot_sample(
    records: Iterable[T],
    shots: int,
    seed: int,
    languages: Sequence[str] | None = None,
    language_of: Callable[[T], str] = record_language,
    key_of: Callable[[T], str] = lambda record: record["key"],
) -> list[T]:
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
            raise DataError(
                f"language {language!r} has {len(pool)} training examples, fewer than {shots} shots; "
                "lower the shots or add data for it"
            )
        chosen.extend(random.Random(f"{seed}:{language}").sample(pool, shots))
    return chosen
