"""stats.json: counts read, written and rejected, text and image histograms, and the check that nothing was lost."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable

from x2vlm_core.dataprep.outputs import CREATED_BY

CAPTION_WORD_BUCKET = 5
CAPTION_WORD_CAP = 40
IMAGE_SIDE_BUCKETS = (64, 128, 256, 512, 1024)


def texts(meta: dict[str, Any]) -> list[str]:
    """Every text a sample's meta holds: captions, sentences, region phrases, questions, translations."""
    found = list(meta.get("captions", [])) + list(meta.get("sentences", []))
    found += [region["caption"] for region in meta.get("regions", [])]
    found += [meta[name] for name in ("question", "sentence", "source_text", "target_text") if name in meta]
    return found


def word_bucket(words: int) -> str:
    # Zero-padded labels so sorted JSON keys read in numeric order.
    if words >= CAPTION_WORD_CAP:
        return f"{CAPTION_WORD_CAP}+"
    low = words - words % CAPTION_WORD_BUCKET
    return f"{low:02d}-{low + CAPTION_WORD_BUCKET - 1:02d}"


def side_bucket(side: int) -> str:
    for limit in IMAGE_SIDE_BUCKETS:
        if side <= limit:
            return f"<={limit:04d}"
    return f">{IMAGE_SIDE_BUCKETS[-1]:04d}"


def samples_stats(samples: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of some samples (one shard's), in the shape ``job_stats`` adds up."""
    samples = list(samples)
    return {
        "by_source": dict(Counter(s["source"] for s in samples)),
        "texts_dropped_empty": sum(s["texts_dropped"] for s in samples),
        "boxes": dict(sum((Counter(s.get("boxes", {})) for s in samples), Counter())),
        "caption_length_words": dict(
            Counter(word_bucket(len(text.split())) for s in samples for text in texts(s["meta"]))
        ),
        "image_max_side": dict(Counter(side_bucket(max(size)) for s in samples for size in s["original_sizes"])),
    }


def job_stats(
    read_counts: list[dict[str, Any]], shards: list[dict[str, Any]], rejects: list[dict[str, Any]]
) -> dict[str, Any]:
    """stats.json from the staged read counts, shard entries (with their ``samples_stats``) and rejects."""
    read, written, rejected = _nested_counter(), _nested_counter(), _nested_counter()
    captions: defaultdict[str, Counter] = defaultdict(Counter)
    sides: defaultdict[str, Counter] = defaultdict(Counter)
    texts_dropped: Counter = Counter()
    boxes: defaultdict[str, Counter] = defaultdict(Counter)
    for entry in read_counts:
        read[entry["dataset"]][entry["source"]][entry["split"]] += entry["count"]
    for shard in shards:
        for source, count in shard["by_source"].items():
            written[shard["dataset"]][source][shard["split"]] += count
        captions[shard["dataset"]].update(shard["caption_length_words"])
        texts_dropped[shard["dataset"]] += shard["texts_dropped_empty"]
        sides[shard["dataset"]].update(shard["image_max_side"])
        boxes[shard["dataset"]].update(shard.get("boxes", {}))
    for reject in rejects:
        rejected[reject["dataset"]][reject["source"]][reject["split"]] += 1
        boxes[reject["dataset"]].update(reject.get("boxes", {}))
    return {
        "created_by": CREATED_BY,
        "records": {
            name: _total(counts) for name, counts in (("read", read), ("written", written), ("rejected", rejected))
        },
        "read": _plain(read),
        "written": _plain(written),
        "rejected": _plain(rejected),
        # duplicate_of:<key> is one reason, whatever the key.
        "rejects_by_reason": dict(Counter(reject["reason"].split(":", 1)[0] for reject in rejects)),
        "caption_length_words": _plain(captions),
        "image_max_side": _plain(sides),
        # Empty captions/phrases removed from samples that kept other texts (no text left: an empty_caption reject).
        "texts_dropped_empty": {dataset: count for dataset, count in sorted(texts_dropped.items()) if count},
        # Boxes cut to their image (kept) and dropped (degenerate, mostly_outside), in written and rejected records.
        "boxes": {dataset: dict(sorted(counts.items())) for dataset, counts in sorted(boxes.items()) if counts},
    }


def check_nothing_lost(stats: dict[str, Any]) -> None:
    """Records read == samples written + rejects, per dataset, source and split."""
    groups = set()
    for name in ("read", "written", "rejected"):
        groups |= {(d, s, p) for d, sources in stats[name].items() for s, splits in sources.items() for p in splits}
    for dataset, source, split in sorted(groups):
        counts = [
            stats[name].get(dataset, {}).get(source, {}).get(split, 0) for name in ("read", "written", "rejected")
        ]
        if counts[0] != counts[1] + counts[2]:
            raise RuntimeError(
                f"prepare-data lost records in {dataset}/{source}/{split}: read {counts[0]}, wrote {counts[1]}, "
                f"rejected {counts[2]}; the runner dropped elements, so rerun with --direct_running_mode=in_memory"
            )


def _nested_counter() -> defaultdict:
    return defaultdict(lambda: defaultdict(Counter))


def _total(counts: defaultdict) -> int:
    return sum(n for sources in counts.values() for splits in sources.values() for n in splits.values())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in sorted(value.items())}
    return value
