"""The prepare-data Beam job: raw dataset files -> webdataset shards + index.json + stats.json + rejects.jsonl.

The only module of x2vlm_core that imports Apache Beam; the work per element is the plain
functions of the other ``x2vlm_core.dataprep`` modules. Graph::

    Create(sources) -> FlatMap(source_parts) -> Reshuffle        (one element per tar/parquet/json-lines file)
      -> FlatMap(read part) -> Reshuffle                         (records: captions + where the pixels are)
      -> drop empty texts / decode / validate / resize / re-encode  --(no text, bad image, bad video)--> rejects
         (videos: num_frames frames sampled and decoded with PyAV)
      -> group by (dataset, content hash)      --(same pixels, other file)-----> rejects
         (records without images, e.g. sentence pairs: the hash of their texts; same texts, other key)
      -> sort keys per (dataset, split), cut into shards of shard_size
      -> write each shard atomically (local folder or gs://)
    driver: rejects.jsonl, stats.json, <dataset>/answers.json, index.json (written last: it marks the output complete)

Only the keys meet in one place; the samples themselves are grouped per shard. Per-element
results (counts, shard entries, rejects) come back to the driver as staged files (see
``staging``). Beam metrics counters (namespace ``prepare_data``: ``records_read``,
``samples_written``, ``rejected``, ``rejected_<reason>``, ``texts_dropped_empty``) report
progress on any runner's UI; locally a tqdm bar counts the records processed.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.pvalue import TaggedOutput
from apache_beam.runners.runner import PipelineState

from x2vlm_core import storage
from x2vlm_core.data.images import DEFAULT_MIN_SIDE
from x2vlm_core.data.readers import read_source, source_parts
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.data.sources import Source, load_sources
from x2vlm_core.data.video import DEFAULT_NUM_FRAMES
from x2vlm_core.dataprep.answers import answer_keys, answer_lists
from x2vlm_core.dataprep.coverage import empty_sources, empty_splits
from x2vlm_core.dataprep.dedup import DUPLICATE_OF, drop_duplicates
from x2vlm_core.dataprep.index import build_index
from x2vlm_core.dataprep.outcomes import REJECTED, SAMPLES
from x2vlm_core.dataprep.output_tree import (
    BUILD_PREFIX,
    STAGING_PREFIX,
    clear,
    clear_leftovers,
    is_complete,
    move_into_place,
    named_files,
    refuse_complete,
)
from x2vlm_core.dataprep.outputs import REJECTS_FILE, STATS_FILE, delete_file, pretty_json, write_file
from x2vlm_core.dataprep.records import process_record
from x2vlm_core.dataprep.sharding import assign_shards, route_to_shard, write_one_shard
from x2vlm_core.dataprep.staging import bucket_of, read_staged, remove_staging, write_staged
from x2vlm_core.dataprep.stats import check_nothing_lost, job_stats
from x2vlm_core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

METRICS_NAMESPACE = "prepare_data"
REJECT_BUCKETS = 16  # staged reject files: enough to spread millions of rejects over workers


def run_prepare_data(
    sources: str | Path | Sequence[dict[str, Any] | Source],
    output_dir: str | Path,
    *,
    shard_size: int = 64,
    max_image_side: int = 256,
    num_frames: int = DEFAULT_NUM_FRAMES,
    pipeline_args: list[str] | None = None,
    overwrite: bool = False,
    allow_empty_sources: bool = False,
) -> dict[str, Any]:
    """Run the job; return the index (``datasets``, ``total``, ...) plus ``output_dir``, ``read``, ``rejected`` and ``counters``.

    ``sources`` is a sources YAML path or list (see ``x2vlm_core.data.sources``); ``output_dir`` a
    folder or a ``gs://`` URI. ``num_frames`` frames are sampled from every video. ``pipeline_args``
    go to Beam's ``PipelineOptions`` unchanged (``--runner``, Dataflow/Flink/Spark flags, ...).

    The output is a whole (see ``output_tree``): a complete one (with ``index.json``) is replaced
    only with ``overwrite``, an incomplete one is cleared and rebuilt. A source entry that writes no
    sample fails the run (before the index is written) unless ``allow_empty_sources``.
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size={shard_size}: a shard must hold at least one sample; pass shard_size >= 1")
    if max_image_side < DEFAULT_MIN_SIDE:
        raise ConfigError(
            f"max_image_side={max_image_side}: images would be shrunk below the {DEFAULT_MIN_SIDE}px minimum; pass a larger value"
        )
    if num_frames < 1:
        raise ConfigError(f"num_frames={num_frames}: a video sample needs at least one frame; pass num_frames >= 1")
    source_list = load_sources(sources)
    options = _pipeline_options(pipeline_args)
    runner = local_runner(options)
    out = str(output_dir).rstrip("/") if storage.is_gcs(output_dir) else str(Path(output_dir).resolve())
    if not storage.is_gcs(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    refuse_complete(out, overwrite)
    # An existing complete output stays whole until the new one is ready: build the new one beside it.
    replacing = is_complete(out)
    if replacing:
        clear_leftovers(out)
    else:
        for relative in clear(out):
            logger.info("removing %s, left by an unfinished run", relative)
    build = storage.join(out, f"{BUILD_PREFIX}{uuid.uuid4().hex[:12]}") if replacing else out

    staging = storage.join(out, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
    show_progress = runner is not None or options.view_as(StandardOptions).runner == "BundleBasedDirectRunner"
    settings = {"shard_size": shard_size, "max_image_side": max_image_side, "num_frames": num_frames}
    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
        _build_graph(pipeline, source_list, build, staging, settings, show_progress)
        result = pipeline.run()
        state = result.wait_until_finish()
        if state not in (PipelineState.DONE, None):
            raise RuntimeError(f"prepare-data: the Beam pipeline ended in state {state}; see the runner's logs")
        counters = _counters(result)
        read_counts = read_staged(staging, "read")
        shard_entries = read_staged(staging, "shards")
        answers = read_staged(staging, "answers")
        rejects = sorted(
            read_staged(staging, "rejects"), key=lambda r: (r["dataset"], r["split"], r["key"], r["reason"])
        )
    finally:
        _close_progress()
        remove_staging(staging)

    stats = job_stats(read_counts, shard_entries, rejects)
    check_nothing_lost(stats)
    answer_files = answer_lists(answers)
    stats["answer_lists"] = {dataset: storage_path for dataset, (storage_path, _) in sorted(answer_files.items())}
    stats["empty_splits"] = empty_splits(stats, rejects)
    for dataset, splits in stats["empty_splits"].items():
        for split, entry in splits.items():
            logger.warning(
                "prepare-data: %s/%s is empty: all %d of its records were rejected, mostly %s (see rejects.jsonl)",
                dataset,
                split,
                entry["read"],
                entry["top_reject"],
            )
    index = build_index(shard_entries, settings)
    write_file(
        storage.join(build, REJECTS_FILE),
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects).encode("utf-8"),
    )
    write_file(storage.join(build, STATS_FILE), pretty_json(stats))
    for relative, data in sorted(answer_files.values()):
        write_file(storage.join(build, relative), data)
    problems = empty_sources(source_list, stats, rejects)
    if problems and not allow_empty_sources:
        # No index: the output stays incomplete (a complete one being replaced stays as it was).
        raise DataError(
            f"prepare-data: {problems[0]}"
            + (f" (and {len(problems) - 1} more source(s))" if len(problems) > 1 else "")
            + f"; see {storage.join(build, REJECTS_FILE)}, or pass --allow-empty-sources"
        )
    named = named_files(index, (relative for relative, _ in answer_files.values()))
    if replacing:
        # Un-commit the old output only now, so that no index ever vouches for a mix of old and new shards.
        delete_file(storage.join(out, INDEX_FILE))
        move_into_place(build, out, named - {INDEX_FILE})
    write_file(storage.join(out, INDEX_FILE), pretty_json(index))  # the commit point
    for relative in clear(out, keep=named):
        logger.info("removed %s: not part of the new output", relative)
    summary = {
        **index,
        "output_dir": out,
        "read": stats["records"]["read"],
        "rejected": stats["records"]["rejected"],
        "counters": counters,
    }
    logger.info(
        "prepare-data wrote %d samples (%d rejected) to %s; counters %s",
        summary["total"],
        summary["rejected"],
        out,
        counters,
    )
    return summary


def _pipeline_options(pipeline_args: list[str] | None) -> PipelineOptions:
    # Every flag passes through untouched; without --runner the job runs locally (see local_runner), in_memory by default.
    options = PipelineOptions(list(pipeline_args or []))
    if options.view_as(DirectOptions).direct_running_mode == "multi_threading":
        raise ConfigError(
            "pipeline_args: --direct_running_mode=multi_threading silently drops elements at a GroupByKey; "
            "use in_memory (the default) or multi_processing"
        )
    return options


def local_runner(options: PipelineOptions) -> Any:
    """The runner of a local run (no --runner, or the DirectRunner): Beam's FnApiRunner, named explicitly.

    The DirectRunner first tries the Prism runner, whose binary it downloads: offline that fails
    after a while, and where DNS hangs it stalls. The FnApiRunner runs every transform of this job
    and honours --direct_running_mode (in_memory, multi_processing). None for any other runner.
    """
    if options.view_as(StandardOptions).runner not in (None, "DirectRunner"):
        return None
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _build_graph(
    pipeline: beam.Pipeline,
    sources: list[Source],
    out: str,
    staging: str,
    settings: dict[str, int],
    show_progress: bool,
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
        | "ReadCountEntry"
        >> beam.Map(lambda kv: {"dataset": kv[0][0], "source": kv[0][1], "split": kv[0][2], "count": kv[1]}),
        staging,
        "read",
        buckets=1,
    )
    processed = records | "ProcessImages" >> beam.ParDo(
        ProcessRecord(settings["max_image_side"], settings["num_frames"], show_progress)
    ).with_outputs(REJECTED, main=SAMPLES)
    # Deduplication and shard assignment look at the samples without their pixels: the image bytes
    # cross the network twice only (to meet their shard number, then their shard).
    unique = (
        processed.samples
        | "WithoutImages" >> beam.Map(lambda s: {name: value for name, value in s.items() if name != "images"})
        | "ByContent" >> beam.Map(lambda s: ((s["dataset"], s["content_sha256"]), s))
        | "GroupByContent" >> beam.GroupByKey()
        | "DropDuplicates" >> beam.FlatMapTuple(_drop_duplicates).with_outputs(REJECTED, main=SAMPLES)
    )
    shard_of_key = (
        unique.samples
        | "KeyBySplit" >> beam.Map(lambda s: ((s["dataset"], s["split"]), s["key"]))
        | "GroupKeysBySplit" >> beam.GroupByKey()
        | "AssignShards"
        >> beam.FlatMap(lambda group, size: assign_shards(group[0], group[1], size), settings["shard_size"])
    )
    samples_by_key = processed.samples | "ByKey" >> beam.Map(lambda s: ((s["dataset"], s["split"], s["key"]), s))
    _stage(
        {"shard": shard_of_key, "sample": samples_by_key}
        | "JoinShardIndex" >> beam.CoGroupByKey()
        | "ByShard" >> beam.FlatMapTuple(route_to_shard)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(lambda shard, folder: _write_shard(shard[0], shard[1], folder), out),
        staging,
        "shards",
        buckets=1,
    )
    _stage(
        unique.samples
        | "Answers" >> beam.FlatMap(answer_keys)
        | "CountAnswers" >> beam.CombinePerKey(sum)
        | "AnswerEntry"
        >> beam.Map(lambda kv: {"dataset": kv[0][0], "split": kv[0][1], "answer": kv[0][2], "count": kv[1]}),
        staging,
        "answers",
        buckets=1,
    )
    _stage(
        (processed[REJECTED], unique[REJECTED]) | "AllRejects" >> beam.Flatten(),
        staging,
        "rejects",
        buckets=REJECT_BUCKETS,
    )


def _stage(entries: beam.PCollection, staging: str, name: str, buckets: int) -> None:
    """Write JSON-able ``entries`` as ``<staging>/<name>-NNNNN.jsonl`` files (sorted lines)."""
    _ = (
        entries
        | f"{name}Json" >> beam.Map(lambda entry: json.dumps(entry, sort_keys=True))
        | f"{name}Bucket" >> beam.Map(lambda line: (bucket_of(line, buckets), line))
        | f"{name}Group" >> beam.GroupByKey()
        | f"{name}Write" >> beam.Map(lambda bucket_lines: write_staged(staging, name, *bucket_lines))
    )


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
    """``records.process_record`` on every record: samples to the main output, rejects tagged, both counted."""

    def __init__(self, max_image_side: int, num_frames: int, show_progress: bool = False) -> None:
        self.max_image_side, self.num_frames, self.show_progress = max_image_side, num_frames, show_progress
        self.rejected = Metrics.counter(METRICS_NAMESPACE, "rejected")
        self.texts_dropped = Metrics.counter(METRICS_NAMESPACE, "texts_dropped_empty")

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        if self.show_progress:
            _progress_tick()
        tag, value = process_record(record, self.max_image_side, self.num_frames)
        if tag == REJECTED:
            self.rejected.inc()
            Metrics.counter(METRICS_NAMESPACE, f"rejected_{value['reason']}").inc()
            yield TaggedOutput(REJECTED, value)
        else:
            self.texts_dropped.inc(value["texts_dropped"])
            yield value


def _drop_duplicates(content_key: tuple[str, str], samples: Iterable[dict[str, Any]]) -> Iterator[Any]:
    # The samples of one (dataset, content hash): ``dedup.drop_duplicates`` picks the kept file, rejects are tagged and counted.
    for tag, value in drop_duplicates(samples):
        if tag == REJECTED:
            Metrics.counter(METRICS_NAMESPACE, "rejected").inc()
            Metrics.counter(METRICS_NAMESPACE, f"rejected_{DUPLICATE_OF}").inc()
            yield TaggedOutput(REJECTED, value)
        else:
            yield value


def _write_shard(shard_key: tuple[str, str, int], samples: Iterable[dict[str, Any]], output_dir: str) -> dict[str, Any]:
    entry = write_one_shard(shard_key, samples, output_dir)
    Metrics.counter(METRICS_NAMESPACE, "samples_written").inc(entry["count"])
    return entry


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
