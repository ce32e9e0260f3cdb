"""Reading prepared data: ``index.json`` and the webdataset shards it lists (a local folder or gs://).

Layout written by prepare-data::

    index.json                      {"datasets": {dataset: {split: {"count", "shards": [{path, count, bytes, sha256}]}}},
                                     "total", "created_by", "settings": {shard_size, max_image_side, num_frames}}
    stats.json                      records read/written/rejected per dataset/source/split, rejects_by_reason,
                                    caption_length_words and image_max_side histograms, texts_dropped_empty, answer_lists
    rejects.jsonl                   one line per rejected input: key, dataset, source, split, image_paths, reason
    <dataset>/<split>-00000.tar     webdataset shards, samples sorted by key
    <dataset>/answers.json          QA datasets only: {split: [{answer, count}]}, most frequent first

A sample is the members ``<key>.json`` (its meta) plus ``<key>.jpg`` (one image) or
``<key>.img0.jpg``, ``<key>.img1.jpg``, ... (NLVR2 image pairs, and always for video frames);
``iter_shard_samples`` gives ``{"key", "meta", "images": [jpeg bytes, ...]}``. Images are
re-encoded JPEG with their longer side at most ``max_image_side``; every box is ``[x, y, w, h]``
in pixels of the stored image.

Every meta has ``key``, ``dataset``, ``source`` (the input format), ``kind`` and ``split``, plus
``width``/``height`` (one image) or ``image_sizes`` [[w, h], ...] (several images, or frames).
By kind (with the dataset names the shapes world and the default pipeline use):

- ``image_text`` (``pretrain_image_text``: COCO captions, Conceptual Captions via img2dataset or
  TSV, X²-VLM json-lines; ``retrieval``: Karpathy splits; ``pretrain_multilingual``: CCLM
  json-lines): ``image_id`` (not for json-lines), ``captions`` [str, ...] (at least one, none
  empty); multilingual sources add ``caption_languages`` [code, ...], parallel to ``captions``.
- ``region_text`` (``pretrain_region_text``: Visual Genome regions and objects, X²-VLM region
  json-lines): ``image_id`` (VG), ``regions`` [{``bbox``, ``caption``, ``attributes``?: [str]}],
  ``captions`` (whole-image captions, often []).
- ``vqa`` (``vqa``): ``image_id``, ``question_id``, ``question``, ``answers`` (the 10 raw answers),
  ``answer_scores`` {answer: min(1, n/3)}, ``answer_type``.
- ``nlvr2`` (``nlvr2``): ``identifier``, ``sentence``, ``label`` (bool); two images (left, right).
- ``grounding`` (``grounding``: RefCOCO+): ``ref_id``, ``image_id``, ``sentences`` [str, ...], ``bbox``.
- ``video_text`` (``pretrain_video_text``: WebVid; ``video_retrieval``: MSR-VTT, splits train/test):
  ``video_id``, ``captions``, ``num_frames``; the images are the sampled frames, in time order.
- ``video_qa`` (``video_qa``: MSRVTT-QA, splits train/test): ``video_id``, ``question_id``,
  ``question``, ``answer`` (+ ``answer_type``), ``num_frames``; frames as for ``video_text``.
- ``visual_entailment`` (XVNLI): ``image_id``, ``sentence`` (the hypothesis), ``premise``,
  ``label`` (contradiction / entailment / neutral), ``language``.
- ``parallel_text`` (``pretrain_parallel_text``: WikiMatrix-style TSV): ``source_text``,
  ``target_text``, ``source_language``, ``target_language`` (+ ``score``). No image: the sample is
  its ``<key>.json`` alone (``images`` is []), and ``image_sizes`` is [].

Multilingual records also carry ``language`` (IGLUE tasks) or ``caption_languages`` (captions).
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from webdataset.tariterators import group_by_keys, tar_file_iterator

from x2vlm_core import storage
from x2vlm_core.errors import DataError

INDEX_FILE = "index.json"
# Kinds whose records hold text only: their samples are a json member alone.
TEXT_ONLY_KINDS = frozenset({"parallel_text"})
_PAIR_MEMBER = re.compile(r"img(\d+)\.jpg")


def read_index(root: str | Path) -> dict[str, Any]:
    """``root/index.json``; ``root`` is a local folder or a gs:// prefix."""
    path = storage.join(root, INDEX_FILE)
    if not storage.exists(path):
        raise DataError(f"{path} does not exist; run prepare-data into {root} first (the index is written last)")
    try:
        index = json.loads(storage.read_bytes(path).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); re-run prepare-data") from None
    if not isinstance(index, dict) or not isinstance(index.get("datasets"), dict):
        raise DataError(f"{path}: has no 'datasets' mapping; is this a prepare-data index?")
    return index


def list_shards(root: str | Path, dataset: str, split: str) -> list[str]:
    """Absolute paths of the shards of ``dataset``/``split``, in order."""
    datasets = read_index(root)["datasets"]
    if split not in datasets.get(dataset, {}):
        available = {name: sorted(splits) for name, splits in sorted(datasets.items())}
        raise DataError(f"{storage.join(root, INDEX_FILE)}: no dataset {dataset!r} with split {split!r}; "
                        f"available: {available}")
    return [storage.join(root, shard["path"]) for shard in datasets[dataset][split]["shards"]]


def iter_shard_samples(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    """Yield ``{"key", "meta", "images": [jpeg bytes, ...]}`` for every sample, shard by shard, in stored order."""
    for path in paths:
        try:
            with storage.open_uri(path) as handle:
                members = ({**member, "__url__": str(path)} for member in tar_file_iterator(handle))
                for sample in group_by_keys(members):
                    yield _decode(sample, path)
        except (tarfile.TarError, OSError) as error:
            raise DataError(f"{path}: unreadable shard ({error}); re-run prepare-data to rewrite it") from None


def _decode(sample: dict[str, Any], path: str | Path) -> dict[str, Any]:
    key = sample["__key__"]
    if "json" not in sample:
        raise DataError(f"{path}: sample {key!r} has no {key}.json member; re-run prepare-data to rewrite the shard")
    if "jpg" in sample:
        images = [sample["jpg"]]
    else:
        numbered = sorted((int(match[1]), name) for name in sample if (match := _PAIR_MEMBER.fullmatch(name)))
        images = [sample[name] for _, name in numbered]
    meta = json.loads(sample["json"])
    if not images and meta.get("kind") not in TEXT_ONLY_KINDS:
        raise DataError(f"{path}: sample {key!r} has no image member; re-run prepare-data to rewrite the shard")
    return {"key": key, "meta": meta, "images": images}
