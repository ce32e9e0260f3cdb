"""Reading prepared data: ``index.json`` and the webdataset shards it lists (a local folder or gs://).

Layout written by prepare-data::

    index.json                      {"datasets": {dataset: {split: {"count", "shards": [{path, count, bytes, sha256}]}}},
                                     "total", "created_by", "settings": {shard_size, max_image_side, num_frames}}
    stats.json                      records read/written/rejected per dataset/source/split, rejects_by_reason,
                                    caption_length_words and image_max_side histograms, texts_dropped_empty, answer_lists
    rejects.jsonl                   one line per rejected input: key, dataset, source, split, image_paths, reason
    <dataset>/<split>-00000.tar     webdataset shards, samples sorted by key
    <dataset>/answers.json          QA datasets only: {split: [{answer, count}]}, most frequent first

A Dataset artifact may instead be a manifest of such a folder (``index.json`` + ``location.json``,
see ``shard_location``): every reader here follows it to the shards.

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
- ``grounding`` (``grounding``: RefCOCO+): ``ref_id``, ``image_id``, ``sentences`` [str, ...], ``bbox``
  (+ ``proposals`` [[x, y, w, h], ...], the image's detection boxes, when prepared with a dets file).
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

Shards and their index are not trusted: index paths must stay under the shard root, a shard is
read as a plain tar (never inflated) with every member capped in size, and its bytes are hashed
as they stream past, so a shard that is not the one the index lists fails at its end.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, cast

from webdataset.tariterators import group_by_keys

from x2vlm_core import storage
from x2vlm_core.data.shard_location import follow_manifest
from x2vlm_core.errors import DataError

INDEX_FILE = "index.json"
# Far above a re-encoded JPEG or a sample's meta; a member claiming more is an attack or damage.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Kinds whose records hold text only: their samples are a json member alone.
TEXT_ONLY_KINDS = frozenset({"parallel_text"})
_PAIR_MEMBER = re.compile(r"img(\d+)\.jpg")


def read_index(root: str | Path) -> dict[str, Any]:
    """``root/index.json``; ``root`` is a local folder or a gs:// prefix, or a manifest naming one (``shard_location``)."""
    root = follow_manifest(root)
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


@dataclass(frozen=True)
class Shard:
    path: str
    count: int  # samples in the shard, from index.json
    sha256: str | None = None  # from index.json; checked when the shard has been read to its end


def list_shards(root: str | Path, dataset: str, split: str) -> list[Shard]:
    """The shards of ``dataset``/``split``, in order, each checked to lie under ``root`` (or where its manifest points)."""
    root = follow_manifest(root)
    where = storage.join(root, INDEX_FILE)
    datasets = read_index(root)["datasets"]
    if split not in datasets.get(dataset, {}):
        available = {name: sorted(splits) for name, splits in sorted(datasets.items())}
        raise DataError(f"{where}: no dataset {dataset!r} with split {split!r}; available: {available}")
    shards = []
    for entry in datasets[dataset][split]["shards"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not storage.stays_inside(path):
            raise DataError(
                f"{where}: shard path {_short(path)} leaves the data folder; index paths are "
                "relative, without '..'; re-run prepare-data"
            )
        if not _SHA256.fullmatch(str(entry.get("sha256"))) or not isinstance(entry.get("count"), int):
            raise DataError(f"{where}: shard {_short(path)} has no valid sha256 and count; re-run prepare-data")
        shards.append(Shard(storage.join(root, path), entry["count"], entry["sha256"]))
    return shards


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class _Hashed:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> str:
        """Read to the end (the tar's padding after its end marker) and return the sha256."""
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()


def _members(handle: _Hashed, path: str | Path) -> Iterator[dict[str, Any]]:
    # "r|", not "r|*": a compressed stream posing as a shard would be inflated without bound.
    # A stream-mode tar only ever calls read(); the stub asks for a whole file object.
    stream = tarfile.open(fileobj=cast(IO[bytes], handle), mode="r|")
    for info in stream:
        if not info.isreg():
            continue
        if info.size > MAX_MEMBER_BYTES:
            raise DataError(
                f"{path}: member {_short(info.name)} declares {info.size} bytes, more than the "
                f"{MAX_MEMBER_BYTES} allowed; the shard is damaged or not from prepare-data"
            )
        member = stream.extractfile(info)
        assert member is not None  # a regular file always has its data
        yield {"fname": info.name, "data": member.read(), "__url__": str(path)}
        # A stream keeps every header it has read: forget them (typeshed does not declare TarFile.members).
        stream.members = []  # type: ignore[attr-defined]


def iter_shard_samples(shards: Iterable[Shard | str | Path]) -> Iterator[dict[str, Any]]:
    """Yield ``{"key", "meta", "images": [jpeg bytes, ...]}`` for every sample, shard by shard, in stored order.

    A :class:`Shard` (from :func:`list_shards`) is also checked against its sha256 once read to its end.
    """
    for shard in shards:
        path, expected = (shard.path, shard.sha256) if isinstance(shard, Shard) else (shard, None)
        last = None
        try:
            with storage.open_uri(path) as handle:
                hashed = _Hashed(handle)
                for sample in group_by_keys(_members(hashed, path)):
                    if last is not None:
                        yield last
                    last = _decode(sample, path)
                digest = hashed.drain()
        except (tarfile.TarError, OSError, ValueError) as error:
            raise DataError(
                f"{path}: unreadable shard ({str(error)[:200]}); re-run prepare-data to rewrite it"
            ) from None
        if expected is not None and digest != expected:
            raise DataError(
                f"{path}: its sha256 is not the one index.json lists; the shard was changed or "
                "damaged after prepare-data wrote it, re-run prepare-data"
            )
        if last is not None:  # held back until the check: a reader that stops at the count still gets it
            yield last


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
