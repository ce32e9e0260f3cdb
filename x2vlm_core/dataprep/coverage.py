"""What a run left empty: evaluation splits with no sample left, and sources that wrote nothing.

Both used to pass silently: a split whose only records were rejected just vanished from the index,
and a source whose every image path was wrong (``missing_file`` for all) still exited 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from x2vlm_core.data.sources import Source

# A hint for the reason that almost always means the paths in the sources file are off.
_HINTS = {
    "missing_file": "image paths are relative to the source's images/videos folder; check them against the files on disk"
}


def top_reason(rejects: Sequence[dict[str, Any]]) -> str:
    """The most frequent reject reason, with its count (``duplicate_of:<key>`` counted as one reason)."""
    reasons = Counter(reject["reason"].split(":", 1)[0] for reject in rejects)
    if not reasons:
        return "none rejected"
    reason, count = min(reasons.items(), key=lambda item: (-item[1], item[0]))
    return f"{reason} ({count})"


def empty_splits(stats: dict[str, Any], rejects: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{dataset: {split: {read, top_reject}}}`` for every split that had records but wrote no sample."""
    read: Counter[tuple[str, str]] = Counter()
    written: Counter[tuple[str, str]] = Counter()
    for name, counter in (("read", read), ("written", written)):
        for dataset, sources in stats[name].items():
            for splits in sources.values():
                for split, count in splits.items():
                    counter[(dataset, split)] += count
    empty: dict[str, dict[str, dict[str, Any]]] = {}
    for (dataset, split), count in sorted(read.items()):
        if count and not written[(dataset, split)]:
            lost = [r for r in rejects if r["dataset"] == dataset and r["split"] == split]
            empty.setdefault(dataset, {})[split] = {"read": count, "top_reject": top_reason(lost)}
    return empty


def empty_sources(sources: Sequence[Source], stats: dict[str, Any], rejects: Sequence[dict[str, Any]]) -> list[str]:
    """One line per source entry that wrote no sample, naming it and its top reject reason."""
    problems = []
    for position, source in enumerate(sources):

        def mine(split: str) -> bool:
            # An entry is its (dataset, format), and its split where the sources file sets one.
            return source.split is None or split == source.split

        read = sum(
            n for split, n in stats["read"].get(source.dataset, {}).get(source.format, {}).items() if mine(split)
        )
        written = sum(
            n for split, n in stats["written"].get(source.dataset, {}).get(source.format, {}).items() if mine(split)
        )
        if written:
            continue
        lost = [
            r for r in rejects if r["dataset"] == source.dataset and r["source"] == source.format and mine(r["split"])
        ]
        reason = top_reason(lost)
        hint = _HINTS.get(reason.split(" ", 1)[0])
        name = f"sources[{position}] ({source.format} -> {source.dataset}{'/' + source.split if source.split else ''})"
        problems.append(
            f"{name} wrote no samples: read {read}, rejected {len(lost)}, mostly {reason}"
            + (f"; {hint}" if hint else "")
        )
    return problems
