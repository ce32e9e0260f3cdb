"""The prepare-data Beam job: raw dataset files -> webdataset shards + index.json + stats.json + rejects.jsonl.

Graph::

    Create(sources) -> FlatMap(source_parts) -> Reshuffle        (one element per tar/parquet/json-lines file)
      -> FlatMap(read part) -> Reshuffle                         (records: captions + where the pixels are)
      -> drop empty texts / decode / validate / resize / re-encode  --(no text, bad image, bad video)--> rejects
         (videos: num_frames frames sampled and decoded with PyAV)
      -> group by (dataset, content hash)      --(same pixels, other file)-----> rejects
         (records without images, e.g. sentence pairs: the hash of their texts; same texts, other key)
      -> sort keys per (dataset, split), cut into shards of shard_size
      -> write each shard atomically (local folder or gs://)
    driver: rejects.jsonl, stats.json, <dataset>/answers.json, index.json (written last: it marks the output complete)

The shard a record lands in depends only on the sorted keys of its (dataset, split), so the same
input gives the same shard bytes on any runner. Only the keys meet in one place; the samples
themselves are grouped per shard. Per-element results (counts, shard entries, rejects) come back
to the driver as files in a staging folder under the output, written with ``x2vlm_core.storage``
so that workers on Dataflow/Flink/Spark can write them to gs:// too. Beam metrics counters
(namespace ``prepare_data``: ``records_read``, ``samples_written``, ``rejected``,
``rejected_<reason>``, ``texts_dropped_empty``) report progress on any runner's UI; locally a
tqdm bar counts the records processed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.pvalue import TaggedOutput
from apache_beam.runners.runner import PipelineState

from x2vlm_core import __version__, storage
from x2vlm_core.data.images import DEFAULT_MIN_SIDE, TOO_LARGE, encode_jpeg, load_and_validate, resize_max_side, validate_size
from x2vlm_core.data.readers import VIDEO_KINDS, read_source, source_parts
from x2vlm_core.data.readers.common import drop_empty_texts
from x2vlm_core.data.shard_writer import shard_meta, shard_relpath, write_shard
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.data.sources import Source, load_sources
from x2vlm_core.data.video import DEFAULT_NUM_FRAMES, load_video_frames
from x2vlm_core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

REJECTED = "rejected"
STATS_FILE = "stats.json"
REJECTS_FILE = "rejects.jsonl"
ANSWERS_FILE = "answers.json"
METRICS_NAMESPACE = "prepare_data"
REJECT_BUCKETS = 16  # staged reject files: enough to spread millions of rejects over workers
CREATED_BY = f"x2vlm_core {__version__} components.prepare_data"
CAPTION_WORD_BUCKET = 5
CAPTION_WORD_CAP = 40
IMAGE_SIDE_BUCKETS = (64, 128, 256, 512, 1024)
SHARD_NAME = re.compile(r"[A-Za-z0-9_-]+-\d{5}\.tar")
# Fields saying where a record came from, not what it holds: left out of a text-only record's content hash.
_BOOKKEEPING = frozenset({"key", "dataset", "source", "split", "image_paths", "score", "texts_dropped"})


def run_prepare_data(
    sources: str | Path | Sequence[dict[str, Any] | Source],
    output_dir: str | Path,
    *,
    shard_size: int = 64,
    max_image_side: int = 256,
    num_frames: int = DEFAULT_NUM_FRAMES,
    pipeline_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run the job; return the index (``datasets``, ``total``, ...) plus ``output_dir``, ``read``, ``rejected`` and ``counters``.

    ``sources`` is a sources YAML path or list (see ``x2vlm_core.data.sources``); ``output_dir`` a
    folder or a ``gs://`` URI. ``num_frames`` frames are sampled from every video. ``pipeline_args``
    go to Beam's ``PipelineOptions`` unchanged (``--runner``, Dataflow/Flink/Spark flags, ...).
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size={shard_size}: a shard must hold at least one sample; pass shard_size >= 1")
    if max_image_side < DEFAULT_MIN_SIDE:
        raise ConfigError(f"max_image_side={max_image_side}: images would be shrunk below the {DEFAULT_MIN_SIDE}px minimum; pass a larger value")
    if num_frames < 1:
        raise ConfigError(f"num_frames={num_frames}: a video sample needs at least one frame; pass num_frames >= 1")
    source_list = load_sources(sources)
    options = _pipeline_options(pipeline_args)
    out = str(output_dir).rstrip("/") if storage.is_gcs(output_dir) else str(Path(output_dir).resolve())
    if not storage.is_gcs(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    # Shards are about to be rewritten: an old index would vouch for bytes that no longer match it.
    _delete(storage.join(out, INDEX_FILE))

    staging = storage.join(out, f".prepare-staging-{uuid.uuid4().hex[:12]}")
    show_progress = options.view_as(StandardOptions).runner in ("DirectRunner", "BundleBasedDirectRunner")
    settings = {"shard_size": shard_size, "max_image_side": max_image_side, "num_frames": num_frames}
    try:
        pipeline = beam.Pipeline(options=options)
        _build_graph(pipeline, source_list, out, staging, settings, show_progress)
        result = pipeline.run()
        state = result.wait_until_finish()
        if state not in (PipelineState.DONE, None):
            raise RuntimeError(f"prepare-data: the Beam pipeline ended in state {state}; see the runner's logs")
        counters = _counters(result)
        read_counts = _read_staged(staging, "read")
        shard_entries = _read_staged(staging, "shards")
        answers = _read_staged(staging, "answers")
        rejects = sorted(_read_staged(staging, "rejects"), key=lambda r: (r["dataset"], r["split"], r["key"], r["reason"]))
    finally:
        _close_progress()
        for uri in storage.list_uris(staging):
            _delete(uri)
        if not storage.is_gcs(staging) and Path(staging).is_dir():
            Path(staging).rmdir()

    stats = _stats(read_counts, shard_entries, rejects)
    _check_nothing_lost(stats)
    answer_files = _answer_lists(answers)
    stats["answer_lists"] = {dataset: storage_path for dataset, (storage_path, _) in sorted(answer_files.items())}
    index = _index(shard_entries, settings)
    _write(storage.join(out, REJECTS_FILE), "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects).encode("utf-8"))
    _write(storage.join(out, STATS_FILE), _pretty_json(stats))
    for relative, data in sorted(answer_files.values()):
        _write(storage.join(out, relative), data)
    _write(storage.join(out, INDEX_FILE), _pretty_json(index))
    _remove_stale_shards(out, index)
    summary = {
        **index,
        "output_dir": out,
        "read": stats["records"]["read"],
        "rejected": stats["records"]["rejected"],
        "counters": counters,
    }
    logger.info("prepare-data wrote %d samples (%d rejected) to %s; counters %s", summary["total"], summary["rejected"], out, counters)
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
    pipeline: beam.Pipeline, sources: list[Source], out: str, staging: str, settings: dict[str, int], show_progress: bool
) -> None:
    records = (
        pipeline
        | "Sources" >> beam.Create(sources)
        | "SplitSources" >> beam.FlatMap(source_parts)
        # A sharded source (tars, parquet or json-lines parts) is read file by file on many workers.
        | "SpreadParts" >> beam.Reshuffle()
        | "ReadParts" >> beam.ParDo(ReadPart())
        # One part still yields many records: reshuffle so the image work spreads over workers.
        | "SpreadRecords" >> beam.Reshuffle()
    )
    _stage(
        records
        | "ReadGroup" >> beam.Map(lambda r: ((r["dataset"], r["source"], r["split"]), 1))
        | "CountRead" >> beam.CombinePerKey(sum)
        | "ReadCountEntry" >> beam.Map(lambda kv: {"dataset": kv[0][0], "source": kv[0][1], "split": kv[0][2], "count": kv[1]}),
        staging, "read", buckets=1,
    )
    processed = records | "ProcessImages" >> beam.ParDo(
        ProcessRecord(settings["max_image_side"], settings["num_frames"], show_progress)
    ).with_outputs(REJECTED, main="samples")
    # Deduplication and shard assignment look at the samples without their pixels: the image bytes
    # cross the network twice only (to meet their shard number, then their shard).
    unique = (
        processed.samples
        | "WithoutImages" >> beam.Map(lambda s: {name: value for name, value in s.items() if name != "images"})
        | "ByContent" >> beam.Map(lambda s: ((s["dataset"], s["content_sha256"]), s))
        | "GroupByContent" >> beam.GroupByKey()
        | "DropDuplicates" >> beam.FlatMap(drop_duplicates).with_outputs(REJECTED, main="samples")
    )
    shard_of_key = (
        unique.samples
        | "KeyBySplit" >> beam.Map(lambda s: ((s["dataset"], s["split"]), s["key"]))
        | "GroupKeysBySplit" >> beam.GroupByKey()
        | "AssignShards" >> beam.FlatMap(assign_shards, settings["shard_size"])
    )
    samples_by_key = processed.samples | "ByKey" >> beam.Map(lambda s: ((s["dataset"], s["split"], s["key"]), s))
    _stage(
        {"shard": shard_of_key, "sample": samples_by_key}
        | "JoinShardIndex" >> beam.CoGroupByKey()
        | "ByShard" >> beam.FlatMap(route_to_shard)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(write_one_shard, out),
        staging, "shards", buckets=1,
    )
    _stage(
        unique.samples
        | "Answers" >> beam.FlatMap(answer_keys)
        | "CountAnswers" >> beam.CombinePerKey(sum)
        | "AnswerEntry" >> beam.Map(lambda kv: {"dataset": kv[0][0], "split": kv[0][1], "answer": kv[0][2], "count": kv[1]}),
        staging, "answers", buckets=1,
    )
    _stage((processed[REJECTED], unique[REJECTED]) | "AllRejects" >> beam.Flatten(), staging, "rejects", buckets=REJECT_BUCKETS)


def _stage(entries: beam.PCollection, staging: str, name: str, buckets: int) -> None:
    """Write JSON-able ``entries`` as ``<staging>/<name>-NNNNN.jsonl`` files (sorted lines) through x2vlm_core.storage."""
    _ = (
        entries
        | f"{name}Json" >> beam.Map(lambda entry: json.dumps(entry, sort_keys=True))
        | f"{name}Bucket" >> beam.Map(lambda line: (zlib.crc32(line.encode("utf-8")) % buckets, line))
        | f"{name}Group" >> beam.GroupByKey()
        | f"{name}Write" >> beam.Map(_write_staged, staging, name)
    )


def _write_staged(element: tuple[int, Iterable[str]], staging: str, name: str) -> None:
    bucket, lines = element
    storage.write_bytes(storage.join(staging, f"{name}-{bucket:05d}.jsonl"), "".join(line + "\n" for line in sorted(lines)).encode("utf-8"))


class ReadPart(beam.DoFn):
    """Read one source part into records, counting them."""

    def __init__(self) -> None:
        self.read = Metrics.counter(METRICS_NAMESPACE, "records_read")

    def process(self, element: tuple[Source, str | None]) -> Iterator[dict[str, Any]]:
        source, part = element
        for record in read_source(source, part):
            self.read.inc()
            yield record


_PROGRESS: Any = None


def _progress_tick() -> None:
    # One bar per worker process: the in_memory DirectRunner has exactly one.
    global _PROGRESS
    if _PROGRESS is None:
        from tqdm import tqdm

        _PROGRESS = tqdm(desc="prepare-data records", unit="rec", mininterval=1.0, disable=None)
    _PROGRESS.update(1)


def _close_progress() -> None:
    global _PROGRESS
    if _PROGRESS is not None:
        _PROGRESS.close()
        _PROGRESS = None


class ProcessRecord(beam.DoFn):
    """Drop empty texts, then decode, check, shrink and re-encode the record's images (or video frames)."""

    def __init__(self, max_image_side: int, num_frames: int, show_progress: bool = False) -> None:
        self.max_image_side, self.num_frames, self.show_progress = max_image_side, num_frames, show_progress
        self.rejected = Metrics.counter(METRICS_NAMESPACE, "rejected")
        self.texts_dropped = Metrics.counter(METRICS_NAMESPACE, "texts_dropped_empty")

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        if self.show_progress:
            _progress_tick()
        for output in process_record(record, self.max_image_side, self.num_frames):
            if isinstance(output, TaggedOutput):
                self.rejected.inc()
                Metrics.counter(METRICS_NAMESPACE, f"rejected_{output.value['reason']}").inc()
            else:
                self.texts_dropped.inc(output["texts_dropped"])
            yield output


def process_record(record: dict[str, Any], max_image_side: int, num_frames: int = DEFAULT_NUM_FRAMES) -> Iterator[Any]:
    """Yield the record as a sample (images resized and re-encoded) or as a tagged reject."""
    if record.get("reader_reject"):
        yield TaggedOutput(REJECTED, _reject(record, record["reader_reject"]))
        return
    record, texts_dropped, reason = drop_empty_texts(record)
    if reason is not None:
        yield TaggedOutput(REJECTED, _reject(record, reason))
        return
    images, sizes, original_sizes, scale = [], [], [], 1.0
    try:
        pictures, reason = _decode(record, num_frames)
        for image in [] if reason else pictures:
            original_sizes.append(image.size)
            image, scale = resize_max_side(image, max_image_side)
            sizes.append(image.size)
            images.append(encode_jpeg(image))
    except MemoryError:  # one picture too big for this worker is that record's reject, never the job's failure
        reason = TOO_LARGE
    if reason is not None:
        yield TaggedOutput(REJECTED, _reject(record, reason))
        return
    digest = hashlib.sha256()
    for data in images:
        digest.update(len(data).to_bytes(8, "big") + data)
    if not images:  # text-only (sentence pairs): duplicates are records with the same content
        digest.update(json.dumps({k: v for k, v in record.items() if k not in _BOOKKEEPING}, sort_keys=True,
                                 ensure_ascii=False).encode("utf-8"))
    if record["kind"] in VIDEO_KINDS:
        record = {**record, "num_frames": len(images)}
    yield {
        "key": record["key"],
        "dataset": record["dataset"],
        "source": record["source"],
        "split": record["split"],
        "image_paths": record["image_paths"],
        "original_sizes": original_sizes,
        "content_sha256": digest.hexdigest(),
        "meta": shard_meta({k: v for k, v in record.items() if k != "reader_reject"}, sizes, scale),
        "images": images,
        "texts_dropped": texts_dropped,
    }


def _decode(record: dict[str, Any], num_frames: int) -> tuple[list[Any], str | None]:
    """The record's pictures: its images, or ``num_frames`` frames of its video."""
    if record["kind"] in VIDEO_KINDS:
        frames, reason = load_video_frames(record["image_paths"][0], num_frames)
        if reason is not None:
            return [], reason
        for frame in frames:
            _, reason = validate_size(frame)
            if reason is not None:
                return [], reason
        return frames, None
    pictures = []
    for name in record["image_paths"]:
        image, reason = load_and_validate(name)
        if reason is not None:
            return [], reason
        pictures.append(image)
    return pictures, None


def answer_keys(sample: dict[str, Any]) -> Iterator[tuple[tuple[str, str, str], int]]:
    """The answers a QA sample teaches: VQA's best-scored answer(s), or the video QA answer."""
    meta = sample["meta"]
    if meta.get("kind") == "vqa" and meta["answer_scores"]:
        best = max(meta["answer_scores"].values())
        for answer, score in meta["answer_scores"].items():
            if score == best:
                yield (sample["dataset"], sample["split"], answer), 1
    elif meta.get("kind") == "video_qa":
        yield (sample["dataset"], sample["split"], meta["answer"]), 1


def drop_duplicates(element: tuple[tuple[str, str], Iterable[dict[str, Any]]]) -> Iterator[Any]:
    """Keep the records of one source image per content hash; other files with the same pixels are rejects.

    Several records may share one image file (VQA questions, RefCOCO refs): those are not duplicates.
    The image whose records have the smallest key wins, so the choice does not depend on arrival order.
    """
    _, samples = element
    by_file: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        # A text-only record is its own "file": records with equal texts are duplicates of each other.
        by_file[tuple(sample["image_paths"]) or ("record", sample["key"])].append(sample)
    first_key = {paths: min(s["key"] for s in group) for paths, group in by_file.items()}
    kept = min(by_file, key=lambda paths: first_key[paths])
    for paths, group in by_file.items():
        for sample in group:
            if paths == kept:
                yield sample
            else:
                Metrics.counter(METRICS_NAMESPACE, "rejected").inc()
                Metrics.counter(METRICS_NAMESPACE, "rejected_duplicate_of").inc()
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


def route_to_shard(element: tuple[tuple[str, str, str], dict[str, list[Any]]]) -> Iterator[tuple[tuple[str, str, int], dict[str, Any]]]:
    """Send a sample to its shard; a sample without a shard number lost to a duplicate (its reject is already out)."""
    (dataset, split, _), joined = element
    if not joined["shard"]:
        return
    (shard,), (sample,) = joined["shard"], joined["sample"]
    yield (dataset, split, shard), sample


def write_one_shard(element: tuple[tuple[str, str, int], Iterable[dict[str, Any]]], output_dir: str) -> dict[str, Any]:
    """Write one shard (samples sorted by key) and return its index entry plus this shard's statistics."""
    (dataset, split, shard), samples = element
    ordered = sorted(samples, key=lambda s: s["key"])
    relative = shard_relpath(dataset, split, shard)
    written = write_shard(storage.join(output_dir, relative), ({"key": s["key"], "meta": s["meta"], "images": s["images"]} for s in ordered))
    Metrics.counter(METRICS_NAMESPACE, "samples_written").inc(written["count"])
    return {
        "dataset": dataset,
        "split": split,
        "shard": shard,
        "path": relative,
        "count": written["count"],
        "bytes": written["bytes"],
        "sha256": written["sha256"],
        "by_source": dict(Counter(s["source"] for s in ordered)),
        "texts_dropped_empty": sum(s["texts_dropped"] for s in ordered),
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
    texts += [meta[name] for name in ("question", "sentence", "source_text", "target_text") if name in meta]
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


def _read_staged(staging: str, prefix: str) -> list[dict[str, Any]]:
    entries = []
    for uri in storage.list_uris(staging):
        if uri.rsplit("/", 1)[-1].startswith(f"{prefix}-"):
            entries.extend(json.loads(line) for line in storage.read_bytes(uri).decode("utf-8").splitlines() if line.strip())
    return entries


def _counters(result: Any) -> dict[str, int]:
    """The job's Beam counters (committed values where the runner has them); empty where it reports none."""
    try:
        query = result.metrics().query()
    except (NotImplementedError, AttributeError):
        return {}
    counters: dict[str, int] = {}
    for counter in query.get("counters", []):
        if counter.key.metric.namespace == METRICS_NAMESPACE:
            value = counter.committed if counter.committed is not None else counter.attempted
            counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + int(value or 0)
    return dict(sorted(counters.items()))


def _nested_counter() -> defaultdict:
    return defaultdict(lambda: defaultdict(Counter))


def _stats(read_counts: list[dict[str, Any]], shards: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> dict[str, Any]:
    read, written, rejected = _nested_counter(), _nested_counter(), _nested_counter()
    captions: defaultdict[str, Counter] = defaultdict(Counter)
    sides: defaultdict[str, Counter] = defaultdict(Counter)
    texts_dropped: Counter = Counter()
    for entry in read_counts:
        read[entry["dataset"]][entry["source"]][entry["split"]] += entry["count"]
    for shard in shards:
        for source, count in shard["by_source"].items():
            written[shard["dataset"]][source][shard["split"]] += count
        captions[shard["dataset"]].update(shard["caption_length_words"])
        texts_dropped[shard["dataset"]] += shard["texts_dropped_empty"]
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
        # Empty captions/phrases removed from samples that kept other texts (no text left: an empty_caption reject).
        "texts_dropped_empty": {dataset: count for dataset, count in sorted(texts_dropped.items()) if count},
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


def _answer_lists(answers: list[dict[str, Any]]) -> dict[str, tuple[str, bytes]]:
    """``dataset -> (relative path, bytes)`` of ``<dataset>/answers.json``: per split, answers by falling count."""
    by_dataset: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for entry in answers:
        by_dataset[entry["dataset"]][entry["split"]].append({"answer": entry["answer"], "count": entry["count"]})
    files = {}
    for dataset, splits in by_dataset.items():
        ordered = {split: sorted(items, key=lambda a: (-a["count"], a["answer"])) for split, items in sorted(splits.items())}
        files[dataset] = (f"{dataset}/{ANSWERS_FILE}", _pretty_json(ordered))
    return files


def _index(shards: list[dict[str, Any]], settings: dict[str, int]) -> dict[str, Any]:
    datasets: dict[str, dict[str, Any]] = {}
    for shard in sorted(shards, key=lambda s: (s["dataset"], s["split"], s["shard"])):
        entry = datasets.setdefault(shard["dataset"], {}).setdefault(shard["split"], {"shards": [], "count": 0})
        entry["shards"].append({name: shard[name] for name in ("path", "count", "bytes", "sha256")})
        entry["count"] += shard["count"]
    return {
        "datasets": datasets,
        "total": sum(split["count"] for splits in datasets.values() for split in splits.values()),
        "created_by": CREATED_BY,
        "settings": dict(settings),
    }


def _total(counts: defaultdict) -> int:
    return sum(n for sources in counts.values() for splits in sources.values() for n in splits.values())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in sorted(value.items())}
    return value


def _pretty_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=2).encode("utf-8") + b"\n"


def _remove_stale_shards(out: str, index: dict[str, Any]) -> None:
    """Delete shards an earlier, larger run left in this run's dataset folders, so a listing sees only indexed shards."""
    for dataset, splits in index["datasets"].items():
        listed = {shard["path"] for entry in splits.values() for shard in entry["shards"]}
        for uri in storage.list_uris(storage.join(out, dataset)):
            name = uri.rsplit("/", 1)[-1]
            in_folder = uri == storage.join(out, dataset, name)  # not in a sub-folder
            if in_folder and f"{dataset}/{name}" not in listed and SHARD_NAME.fullmatch(name):
                logger.info("removing stale shard %s (not in the new index)", uri)
                _delete(uri)


def _delete(uri: str) -> None:
    if storage.is_gcs(uri):
        blob = storage.blob(uri)
        if blob.exists():
            blob.delete()
    else:
        Path(uri).unlink(missing_ok=True)


def _write(uri: str, data: bytes) -> None:
    """Write a whole file: locally beside it, fsynced and renamed into place; on gs:// in one upload."""
    if storage.is_gcs(uri):
        storage.write_bytes(uri, data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
