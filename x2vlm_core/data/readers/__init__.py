"""Readers that turn each raw dataset format into normalised, JSON-able records.

Every record has ``key`` (webdataset-safe, unique within its dataset), ``dataset``, ``source``
(the format), ``kind``, ``split`` and ``image_paths`` (absolute paths, or references to bytes
inside an archive or json-lines file, see ``x2vlm_core.data.images``), plus the fields of its kind:

- ``image_text``:  ``image_id``, ``captions`` (+ ``caption_languages`` for multilingual captions)
- ``region_text``: ``image_id``, ``regions`` [{bbox [x, y, w, h] in pixels, caption, attributes?}], ``captions``
- ``vqa``:         ``image_id``, ``question_id``, ``question``, ``answers`` (raw, 10), ``answer_scores``, ``answer_type``
- ``nlvr2``:       ``identifier``, ``sentence``, ``label`` (bool); two image paths
- ``grounding``:   ``ref_id``, ``image_id``, ``sentences``, ``bbox`` [x, y, w, h] in pixels (+ ``proposals``
  [[x, y, w, h], ...]: the image's detection boxes, when the source has a dets file)
- ``video_text``:  ``video_id``, ``captions``; one video path
- ``video_qa``:    ``video_id``, ``question_id``, ``question``, ``answer`` (+ ``answer_type``); one video path
- ``visual_entailment``: ``image_id``, ``sentence`` (the hypothesis), ``premise``, ``label``, ``language``
- ``parallel_text``: ``source_text``, ``target_text``, ``source_language``, ``target_language`` (+ ``score``); no image

Multilingual readers add ``language`` (or ``caption_languages``) to the kinds above. Every reader
declares its ``SourceFormat`` (paths, options, split) as ``FORMAT``; they are registered here.

A record may also carry ``reader_reject`` (e.g. ``download_failed``, ``remote_url``): the reader
saw the sample but it cannot be used; the job rejects it with that reason instead of dropping it.

Readers check the annotation files; they do not open images (missing or broken images are
rejects of the image step, not errors). Formats with many files (tar shards, parquet files,
json-lines parts) expose ``parts(source)`` so that each file is read on its own worker.
"""

from __future__ import annotations

from types import ModuleType
from typing import Iterator

from x2vlm_core.data.readers import (
    caption_tsv,
    cclm_image_text,
    coco_captions,
    img2dataset_files,
    img2dataset_webdataset,
    karpathy,
    marvl,
    msrvtt,
    msrvtt_qa,
    multi30k,
    nlvr2,
    parallel_tsv,
    refcoco,
    retrieval_json,
    visual_genome,
    visual_genome_objects,
    vqa_v2,
    webvid,
    x2vlm_image_text,
    x2vlm_region_text,
    xflickrco,
    xgqa,
    xvnli,
)
from x2vlm_core.data.sources import SOURCE_FORMATS, Source
from x2vlm_core.errors import ConfigError

READERS: dict[str, ModuleType] = {
    "coco_captions": coco_captions,
    "karpathy": karpathy,
    "visual_genome": visual_genome,
    "visual_genome_objects": visual_genome_objects,
    "vqa_v2": vqa_v2,
    "nlvr2": nlvr2,
    "refcoco": refcoco,
    "img2dataset_webdataset": img2dataset_webdataset,
    "img2dataset_files": img2dataset_files,
    "caption_tsv": caption_tsv,
    "webvid": webvid,
    "msrvtt": msrvtt,
    "msrvtt_qa": msrvtt_qa,
    "x2vlm_image_text": x2vlm_image_text,
    "x2vlm_region_text": x2vlm_region_text,
    # CCLM: multilingual captions and parallel sentences (pre-training), IGLUE and multilingual retrieval.
    "cclm_image_text": cclm_image_text,
    "parallel_tsv": parallel_tsv,
    "xvnli": xvnli,
    "xgqa": xgqa,
    "marvl": marvl,
    "xflickrco": xflickrco,
    "multi30k": multi30k,
    "retrieval_json": retrieval_json,
}
# The one place formats are registered: each reader declares its own (``FORMAT``).
SOURCE_FORMATS.update((name, reader.FORMAT) for name, reader in READERS.items())

# Kinds whose one input is a video file, decoded into sampled frames.
VIDEO_KINDS = frozenset({"video_text", "video_qa"})


def _reader(source: Source) -> ModuleType:
    if source.format not in READERS:
        raise ConfigError(f"source format {source.format!r} has no reader; use one of {sorted(READERS)}")
    return READERS[source.format]


def source_parts(source: Source) -> list[tuple[Source, str | None]]:
    """The independently readable pieces of a source: one per file for sharded formats, else the whole source."""
    reader = _reader(source)
    if hasattr(reader, "parts"):
        return [(source, part) for part in reader.parts(source)]
    return [(source, None)]


def read_source(source: Source, part: str | None = None) -> Iterator[dict]:
    """Yield the normalised records of one validated source (see ``x2vlm_core.data.sources``), or of one of its parts."""
    reader = _reader(source)
    if part is None:
        return reader.read(source)
    return reader.read(source, part)
