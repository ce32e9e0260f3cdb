"""The prepare-data Beam job: raw dataset files -> webdataset shards + index.json + stats.json + rejects.jsonl.

Graph::

    Create(sources) -> FlatMap(read_source) -> Reshuffle
      -> load / validate / resize / re-encode  --(bad image)-------------------> rejects
      -> group by (dataset, content hash)      --(same pixels, other file)-----> rejects
      -> sort keys per (dataset, split), cut into shards of shard_size
      -> write each shard atomically
    driver: index.json (written last: it marks the output complete), stats.json, rejects.jsonl

The shard a record lands in depends only on the sorted keys of its (dataset, split), so the same
input gives the same shard bytes on any runner. Only the keys meet in one place; the samples
themselves are grouped per shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
from apache_beam.io import WriteToText
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.pvalue import TaggedOutput

from x2vlm_core import __version__
from x2vlm_core.data.images import DEFAULT_MIN_SIDE, encode_jpeg, load_and_validate, resize_max_side
from x2vlm_core.data.readers import read_source
from x2vlm_core.data.shard_writer import shard_meta, shard_relpath, write_shard
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.data.sources import Source, load_sources
from x2vlm_core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

REJECTED = "rejected"
STATS_FILE = "stats.json"
REJECTS_FILE = "rejects.jsonl"
CREATED_BY = f"x2vlm_core {__version__} components.prepare_data"
CAPTION_WORD_BUCKET = 5
CAPTION_WORD_CAP = 40
IMAGE_SIDE_BUCKETS = (64, 128, 256, 512, 1024)
SHARD_NAME = re.compile(r"[A-Za-z0-9_-]+-\d{5}\.tar")


def run_prepare_data(
    sources: str | Path | Sequence[dict[str, Any] | Source],
    output_dir: str | Path,
    *,
    shard_size: int = 64,
    max_image_side: int = 256,
    pipeline_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run the job; return the index (``datasets``, ``total``, ...) plus ``output_dir``, ``read`` and ``rejected``.

    ``sources`` is a sources YAML path or list (see ``x2vlm_core.data.sources``). ``pipeline_args``
    go to Beam's ``PipelineOptions`` unchanged (``--runner``, Dataflow/Flink/Spark flags, ...).
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size={shard_size}: a shard must hold at least one sample; pass shard_size >= 1")
    if max_image_side < DEFAULT_MIN_SIDE:
        raise ConfigError(f"max_image_side={max_image_side}: images would be shrunk below the {DEFAULT_MIN_SIDE}px minimum; pass a larger value")
    source_list = load_sources(sources)
    options = _pipeline_options(pipeline_args)
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Shards are about to be rewritten: an old index would vouch for bytes that no longer match it.
    (out / INDEX_FILE).unlink(missing_ok=True)

    # Small per-element results (counts, shard entries, rejects) come back to the driver through files.
    staging = Path(tempfile.mkdtemp(prefix=".prepare-staging-", dir=out))
    try:
        with beam.Pipeline(options=options) as pipeline:
            _build_graph(pipeline, source_list, out, staging, shard_size, max_image_side)
        read_counts = _read_staged(staging, "read")
        shard_entries = _read_staged(staging, "shards")
        rejects = sorted(_read_staged(staging, "rejects"), key=lambda r: (r["dataset"], r["split"], r["key"], r["reason"]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    stats = _stats(read_counts, shard_entries, rejects)
    _check_nothing_lost(stats)
    index = _index(shard_entries, shard_size, max_image_side)
    _write_atomically(out / REJECTS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects).encode("utf-8"))
    _write_atomically(out / STATS_FILE, _pretty_json(stats))
    _write_atomically(out / INDEX_FILE, _pretty_json(index))
    _remove_stale_shards(out, index)
    summary = {**index, "output_dir": str(out), "read": stats["records"]["read"], "rejected": stats["records"]["rejected"]}
    logger.info("prepare-data wrote %d samples (%d rejected) to %s", summary["total"], summary["rejected"], out)
    return summary


def _pipeline_options(pipeline_args: list[str] | None) -> PipelineOptions:
    # Every flag passes through untouched; without --runner it is the DirectRunner, in_memory by default.
    options = PipelineOptions(list(pipeline_args or []))
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = "DirectRunner"
    if options.view_as(DirectOptions).direct_running_mode == "multi_threading":
        raise ConfigError(
            "pipeline_args: --direct_running_mode=multi_threading silently drops elements at a GroupByKey; "
            "use in_memory (the default) or multi_processing"
        )
    return options


def _build_graph(
    pipeline: beam.Pipeline, sources: list[Source], out: Path, staging: Path, shard_size: int, max_image_side: int
) -> None:
    records = (
        pipeline
        | "Sources" >> beam.Create(sources)
        | "ReadSources" >> beam.FlatMap(read_source)
        # One source is one element: reshuffle so the image work spreads over workers.
        | "SpreadRecords" >> beam.Reshuffle()
    )
    _ = (
        records
        | "ReadGroup" >> beam.Map(lambda r: ((r["dataset"], r["source"], r["split"]), 1))
        | "CountRead" >> beam.CombinePerKey(sum)
        | "ReadCountJson" >> beam.Map(lambda kv: json.dumps({"dataset": kv[0][0], "source": kv[0][1], "split": kv[0][2], "count": kv[1]}))
        | "StageReadCounts" >> WriteToText(str(staging / "read"))
    )
    processed = records | "ProcessImages" >> beam.FlatMap(process_record, max_image_side).with_outputs(REJECTED, main="samples")
    unique = (
        processed.samples
        | "ByContent" >> beam.Map(lambda s: ((s["dataset"], s["content_sha256"]), s))
        | "GroupByContent" >> beam.GroupByKey()
        | "DropDuplicates" >> beam.FlatMap(drop_duplicates).with_outputs(REJECTED, main="samples")
    )
    shard_of_key = (
        unique.samples
        | "KeyBySplit" >> beam.Map(lambda s: ((s["dataset"], s["split"]), s["key"]))
        | "GroupKeysBySplit" >> beam.GroupByKey()
        | "AssignShards" >> beam.FlatMap(assign_shards, shard_size)
    )
    samples_by_key = unique.samples | "ByKey" >> beam.Map(lambda s: ((s["dataset"], s["split"], s["key"]), s))
    _ = (
        {"shard": shard_of_key, "sample": samples_by_key}
        | "JoinShardIndex" >> beam.CoGroupByKey()
        | "ByShard" >> beam.Map(route_to_shard)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(write_one_shard, str(out))
        | "ShardJson" >> beam.Map(lambda entry: json.dumps(entry, sort_keys=True))
        | "StageShards" >> WriteToText(str(staging / "shards"))
    )
    _ = (
        (processed[REJECTED], unique[REJECTED])
        | "AllRejects" >> beam.Flatten()
        | "RejectJson" >> beam.Map(lambda reject: json.dumps(reject, sort_keys=True))
        | "StageRejects" >> WriteToText(str(staging / "rejects"))
    )


def process_record(record: dict[str, Any], max_image_side: int) -> Iterator[Any]:
    """Decode, check, shrink and re-encode the record's images; yield a sample or a tagged reject."""
    images, sizes, original_sizes, scale = [], [], [], 1.0
    for path in record["image_paths"]:
        image, reason = load_and_validate(path)
        if reason is not None:
            yield TaggedOutput(REJECTED, _reject(record, reason))
            return
        original_sizes.append(image.size)
        image, scale = resize_max_side(image, max_image_side)
        sizes.append(image.size)
        images.append(encode_jpeg(image))
    digest = hashlib.sha256()
    for data in images:
        digest.update(len(data).to_bytes(8, "big") + data)
    yield {
        "key": record["key"],
        "dataset": record["dataset"],
        "source": record["source"],
        "split": record["split"],
        "image_paths": record["image_paths"],
        "original_sizes": original_sizes,
        "content_sha256": digest.hexdigest(),
        "meta": shard_meta(record, sizes, scale),
        "images": images,
    }


def drop_duplicates(element: tuple[tuple[str, str], Iterable[dict[str, Any]]]) -> Iterator[Any]:
    """Keep the records of one source image per content hash; other files with the same pixels are rejects.

    Several records may share one image file (VQA questions, RefCOCO refs): those are not duplicates.
    The image whose records have the smallest key wins, so the choice does not depend on arrival order.
    """
    _, samples = element
    by_file: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        by_file[tuple(sample["image_paths"])].append(sample)
    first_key = {paths: min(s["key"] for s in group) for paths, group in by_file.items()}
    kept = min(by_file, key=lambda paths: first_key[paths])
    for paths, group in by_file.items():
        for sample in group:
            if paths == kept:
                yield sample
            else:
                yield TaggedOutput(REJECTED, _reject(sample, f"duplicate_of:{first_key[kept]}"))


def assign_shards(element: tuple[tuple[str, str], Iterable[str]], shard_size: int) -> Iterator[tuple[tuple[str, str, str], int]]:
    (dataset, split), keys = element
    ordered = sorted(keys)
    for position, key in enumerate(ordered):
        if position and ordered[position - 1] == key:
            raise DataError(
                f"dataset {dataset!r} split {split!r}: two records have the key {key!r}; "
                "two sources with overlapping ids feed one dataset, so give them different 'dataset' names"
            )
        yield (dataset, split, key), position // shard_size


def route_to_shard(element: tuple[tuple[str, str, str], dict[str, list[Any]]]) -> tuple[tuple[str, str, int], dict[str, Any]]:
    (dataset, split, _), joined = element
    (shard,), (sample,) = joined["shard"], joined["sample"]
    return (dataset, split, shard), sample


def write_one_shard(element: tuple[tuple[str, str, int], Iterable[dict[str, Any]]], output_dir: str) -> dict[str, Any]:
    """Write one shard (samples sorted by key) and return its index entry plus this shard's statistics."""
    (dataset, split, shard), samples = element
    ordered = sorted(samples, key=lambda s: s["key"])
    relative = shard_relpath(dataset, split, shard)
    written = write_shard(Path(output_dir) / relative, ({"key": s["key"], "meta": s["meta"], "images": s["images"]} for s in ordered))
    return {
        "dataset": dataset,
        "split": split,
        "shard": shard,
        "path": relative,
        "count": written["count"],
        "bytes": written["bytes"],
        "sha256": written["sha256"],
        "by_source": dict(Counter(s["source"] for s in ordered)),
        "caption_length_words": dict(Counter(_word_bucket(len(text.split())) for s in ordered for text in _texts(s["meta"]))),
        "image_max_side": dict(Counter(_side_bucket(max(size)) for s in ordered for size in s["original_sizes"])),
    }


def _reject(record: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "key": record["key"],
        "dataset": record["dataset"],
        "source": record["source"],
        "split": record["split"],
        "image_paths": record["image_paths"],
        "reason": reason,
    }


def _texts(meta: dict[str, Any]) -> list[str]:
    texts = list(meta.get("captions", [])) + list(meta.get("sentences", []))
    texts += [region["caption"] for region in meta.get("regions", [])]
    texts += [meta[name] for name in ("question", "sentence") if name in meta]
    return texts


def _word_bucket(words: int) -> str:
    # Zero-padded labels so sorted JSON keys read in numeric order.
    if words >= CAPTION_WORD_CAP:
        return f"{CAPTION_WORD_CAP}+"
    low = words - words % CAPTION_WORD_BUCKET
    return f"{low:02d}-{low + CAPTION_WORD_BUCKET - 1:02d}"


def _side_bucket(side: int) -> str:
    for limit in IMAGE_SIDE_BUCKETS:
        if side <= limit:
            return f"<={limit:04d}"
    return f">{IMAGE_SIDE_BUCKETS[-1]:04d}"


def _read_staged(staging: Path, prefix: str) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(staging.glob(f"{prefix}-*")):
        with open(path, encoding="utf-8") as handle:
            entries.extend(json.loads(line) for line in handle if line.strip())
    return entries


def _nested_counter() -> defaultdict:
    return defaultdict(lambda: defaultdict(Counter))


def _stats(read_counts: list[dict[str, Any]], shards: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> dict[str, Any]:
    read, written, rejected = _nested_counter(), _nested_counter(), _nested_counter()
    captions: defaultdict[str, Counter] = defaultdict(Counter)
    sides: defaultdict[str, Counter] = defaultdict(Counter)
    for entry in read_counts:
        read[entry["dataset"]][entry["source"]][entry["split"]] += entry["count"]
    for shard in shards:
        for source, count in shard["by_source"].items():
            written[shard["dataset"]][source][shard["split"]] += count
        captions[shard["dataset"]].update(shard["caption_length_words"])
        sides[shard["dataset"]].update(shard["image_max_side"])
    for reject in rejects:
        rejected[reject["dataset"]][reject["source"]][reject["split"]] += 1
    return {
        "created_by": CREATED_BY,
        "records": {name: _total(counts) for name, counts in (("read", read), ("written", written), ("rejected", rejected))},
        "read": _plain(read),
        "written": _plain(written),
        "rejected": _plain(rejected),
        # duplicate_of:<key> is one reason, whatever the key.
        "rejects_by_reason": dict(Counter(reject["reason"].split(":", 1)[0] for reject in rejects)),
        "caption_length_words": _plain(captions),
        "image_max_side": _plain(sides),
    }


def _check_nothing_lost(stats: dict[str, Any]) -> None:
    """Records read == samples written + rejects, per dataset, source and split."""
    groups = set()
    for name in ("read", "written", "rejected"):
        groups |= {(d, s, p) for d, sources in stats[name].items() for s, splits in sources.items() for p in splits}
    for dataset, source, split in sorted(groups):
        counts = [stats[name].get(dataset, {}).get(source, {}).get(split, 0) for name in ("read", "written", "rejected")]
        if counts[0] != counts[1] + counts[2]:
            raise RuntimeError(
                f"prepare-data lost records in {dataset}/{source}/{split}: read {counts[0]}, wrote {counts[1]}, "
                f"rejected {counts[2]}; the runner dropped elements, so rerun with --direct_running_mode=in_memory"
            )


def _index(shards: list[dict[str, Any]], shard_size: int, max_image_side: int) -> dict[str, Any]:
    datasets: dict[str, dict[str, Any]] = {}
    for shard in sorted(shards, key=lambda s: (s["dataset"], s["split"], s["shard"])):
        entry = datasets.setdefault(shard["dataset"], {}).setdefault(shard["split"], {"shards": [], "count": 0})
        entry["shards"].append({name: shard[name] for name in ("path", "count", "bytes", "sha256")})
        entry["count"] += shard["count"]
    return {
        "datasets": datasets,
        "total": sum(split["count"] for splits in datasets.values() for split in splits.values()),
        "created_by": CREATED_BY,
        "settings": {"shard_size": shard_size, "max_image_side": max_image_side},
    }


def _total(counts: defaultdict) -> int:
    return sum(n for sources in counts.values() for splits in sources.values() for n in splits.values())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in sorted(value.items())}
    return value


def _pretty_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=2).encode("utf-8") + b"\n"


def _remove_stale_shards(out: Path, index: dict[str, Any]) -> None:
    """Delete shards an earlier, larger run left in this run's dataset folders, so a glob sees only indexed shards."""
    for dataset, splits in index["datasets"].items():
        listed = {shard["path"] for entry in splits.values() for shard in entry["shards"]}
        for path in (out / dataset).glob("*.tar"):
            relative = f"{dataset}/{path.name}"
            if relative not in listed and SHARD_NAME.fullmatch(path.name):
                logger.info("removing stale shard %s (not in the new index)", path)
                path.unlink()


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
