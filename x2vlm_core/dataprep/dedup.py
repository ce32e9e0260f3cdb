"""Duplicates: the content key of a sample, and which of the samples sharing a key are kept."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, Iterable, Iterator

from x2vlm_core.dataprep.outcomes import REJECTED, SAMPLES, Outcome, reject

DUPLICATE_OF = "duplicate_of"
# Fields saying where a record came from, not what it holds: left out of a text-only record's content hash.
_BOOKKEEPING = frozenset({"key", "dataset", "source", "split", "image_paths", "score", "texts_dropped"})


def content_sha256(images: list[bytes], record: dict[str, Any]) -> str:
    """The dedup key: the hash of the re-encoded pictures, or of the texts when there are none."""
    digest = hashlib.sha256()
    for data in images:
        # Length-prefixed so that [ab, c] and [a, bc] differ.
        digest.update(len(data).to_bytes(8, "big") + data)
    if not images:  # text-only (sentence pairs): duplicates are records with the same content
        digest.update(
            json.dumps(
                {k: v for k, v in record.items() if k not in _BOOKKEEPING}, sort_keys=True, ensure_ascii=False
            ).encode("utf-8")
        )
    return digest.hexdigest()


def drop_duplicates(samples: Iterable[dict[str, Any]]) -> Iterator[Outcome]:
    """Keep the records of one source image per content key; other files with the same pixels are rejects.

    ``samples`` share one dataset and content key. Several records may share one image file (VQA
    questions, RefCOCO refs): those are not duplicates. The image whose records have the smallest
    key wins, so the choice does not depend on arrival order.
    """
    by_file: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        # A text-only record is its own "file": records with equal texts are duplicates of each other.
        by_file[tuple(sample["image_paths"]) or ("record", sample["key"])].append(sample)
    first_key = {paths: min(s["key"] for s in group) for paths, group in by_file.items()}
    kept = min(by_file, key=lambda paths: first_key[paths])
    for paths, group in by_file.items():
        for sample in group:
            if paths == kept:
                yield SAMPLES, sample
            else:
                yield REJECTED, reject(sample, f"{DUPLICATE_OF}:{first_key[kept]}")
