"""Stream samples from webdataset shards: split across ranks and workers, shuffled, resumable.

A *reader* is one DataLoader worker of one rank. Each epoch the shard order is permuted
(from the seed and the epoch); a reader then takes whole shards (``shards[reader::readers]``)
or, when there are fewer shards than readers, every ``readers``-th sample of the whole
sequence (so no reader starves, and the union of the ranks' batches does not depend on the
number of ranks). Samples are shuffled in blocks of ``shuffle_buffer``.

Every choice is a function of (seed, epoch, block), so the n-th sample of a reader is found
from the shards' sample counts alone: a resumed run skips to its position without reading
what came before, and gets the very same samples. Each sample also carries a ``seed`` string
naming its place in the data, from which its augmentation and masking are drawn.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from x2vlm_core import storage
from x2vlm_core.data.shards import INDEX_FILE, Shard, iter_shard_samples, list_shards
from x2vlm_core.data.transforms import normalize_images
from x2vlm_core.errors import ConfigError, DataError


def dataset_shards(root: str, dataset: str, split: str = "train") -> list[Shard]:
    """The shards of ``dataset``/``split`` under ``root`` (a folder or gs:// prefix), with their sizes."""
    shards = list_shards(root, dataset, split)
    if not shards or not sum(s.count for s in shards):
        raise DataError(
            f"{storage.join(root, INDEX_FILE)}: {dataset}/{split} lists no samples; "
            "check the sources given to prepare-data"
        )
    return shards


def count_samples(path: str) -> int:
    return sum(1 for _ in iter_shard_samples([path]))


def dataloader_worker() -> tuple[int, int]:
    """``(worker, workers)`` of the calling DataLoader worker; ``(0, 1)`` in the main process."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def reader_identity(rank: int, world_size: int, worker: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(reader, readers)``: this rank's ``worker`` (default: the calling DataLoader worker)."""
    index, workers = worker or dataloader_worker()
    return rank * workers + index, world_size * workers


class _Cursor:
    """Reads a run of consecutive positions of an epoch's shard sequence, reopening only on a jump."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = shards
        self.where: tuple[Any, int] | None = None  # (epoch plan, next flat position)
        self.samples: Iterator[tuple[int, int, dict[str, Any]]] = iter(())

    def _open(self, order: list[int], start: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
        for position, shard in enumerate(order):
            count = self.shards[shard].count
            if start >= count:
                start -= count
                continue
            got = 0
            for offset, sample in enumerate(iter_shard_samples([self.shards[shard]])):
                got += 1
                if offset >= start:
                    yield shard, offset, sample
            if got != count:
                raise DataError(
                    f"{self.shards[shard].path}: holds {got} samples but index.json says {count}; re-run prepare-data"
                )
            start = 0

    def read(self, key: Any, order: list[int], start: int, count: int) -> list[tuple[int, int, dict[str, Any]]]:
        if self.where is None or self.where[0] != key or start < self.where[1]:
            self.samples = self._open(order, start)
        else:
            for _ in range(start - self.where[1]):  # a short jump forward: read past, do not reopen
                next(self.samples)
        out = [next(self.samples) for _ in range(count)]
        self.where = (key, start + count)
        return out


class ShardStream(IterableDataset):
    """Samples of one dataset for this rank and worker; ``start`` skips that many of this reader's samples.

    ``loop=True`` repeats epochs forever, each with a new shard order and shuffle.
    """

    def __init__(
        self,
        shards: Sequence[Shard | str],
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle_buffer: int = 0,
        loop: bool = False,
        start: int = 0,
        name: str = "",
        worker: tuple[int, int] | None = None,
    ) -> None:
        resolved = [s if isinstance(s, Shard) else Shard(str(s), count_samples(str(s))) for s in shards]
        self.shards = [s for s in resolved if s.count]  # an empty shard would leave its reader nothing
        if not self.shards:
            raise DataError(f"no samples in the shards {[s.path for s in resolved][:3]}; check the prepare-data output")
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle_buffer, self.loop = seed, shuffle_buffer, loop
        self.start, self.name, self.worker = start, name, worker

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.shards)))
        if self.shuffle_buffer:
            random.Random(f"{self.seed}:{self.name}:order:{epoch}").shuffle(order)
        return order

    def _block(self, epoch: int, reader_key: str, block: int, size: int) -> list[int]:
        permutation = list(range(size))
        if self.shuffle_buffer > 1:
            random.Random(f"{self.seed}:{self.name}:block:{epoch}:{reader_key}:{block}").shuffle(permutation)
        return permutation

    def positions(self, reader: int, readers: int) -> Iterator[tuple[int, list[int], int, str]]:
        """``(epoch, shard order, flat position, reader key)`` of this reader's samples from ``start`` on."""
        total = sum(s.count for s in self.shards)
        if len(self.shards) >= readers:  # whole shards per reader
            index, epoch = self.start, 0
            while True:
                order = self._order(epoch)[reader::readers]
                length = sum(self.shards[s].count for s in order)
                if index < length:
                    # One reader reads the global sequence: the same shuffle as the sample split below.
                    key = str(reader) if readers > 1 else "all"
                    for position in range(index, length):
                        yield epoch, order, position, key
                    index = 0
                else:
                    index -= length
                epoch += 1
                if not self.loop:
                    return
        # Every readers-th sample of one global sequence, the same for every number of readers per sample.
        position = self.start * readers + reader
        while self.loop or position < total:
            epoch, flat = divmod(position, total)
            yield epoch, self._order(epoch), flat, "all"
            position += readers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader, readers = reader_identity(self.rank, self.world_size, self.worker)
        cursor = _Cursor(self.shards)
        size = max(1, self.shuffle_buffer)
        loaded: tuple[Any, ...] | None = None
        block_samples: list[tuple[int, int, dict[str, Any]]] = []
        permutation: list[int] = []
        for epoch, order, flat, reader_key in self.positions(reader, readers):
            block, within = divmod(flat, size)
            if loaded != (epoch, reader_key, block):
                length = sum(self.shards[s].count for s in order)
                first = block * size
                count = min(size, length - first)
                block_samples = cursor.read((epoch, reader_key), order, first, count)
                permutation = self._block(epoch, reader_key, block, count)
                loaded = (epoch, reader_key, block)
            shard, offset, sample = block_samples[permutation[within]]
            yield {**sample, "seed": f"{self.seed}:{self.name}:{epoch}:{shard}:{offset}"}


class MixedStream(IterableDataset):
    """Samples drawn from several datasets by ``ratios``, each choice fixed by (seed, reader, position)."""

    CHUNK = 4096

    def __init__(
        self, streams: Sequence[ShardStream], ratios: Sequence[float], *, seed: int, name: str, start: int = 0
    ) -> None:
        if len(streams) != len(ratios):
            raise ConfigError(f"{name}: {len(streams)} datasets but {len(ratios)} ratios; give one ratio per dataset")
        if any(r < 0 for r in ratios) or not sum(ratios):
            raise ConfigError(f"{name}: ratios {list(ratios)} must be >= 0 and not all 0")
        self.streams = list(streams)
        self.probabilities = np.asarray(ratios, dtype=np.float64) / sum(ratios)
        self.seed, self.name, self.start = seed, name, start

    def _choices(self, reader: int, chunk: int) -> np.ndarray:
        generator = np.random.default_rng([self.seed, zlib.crc32(self.name.encode()), reader, chunk])
        return generator.choice(len(self.streams), size=self.CHUNK, p=self.probabilities)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        first = self.streams[0]
        reader, _ = reader_identity(first.rank, first.world_size, first.worker)
        if len(self.streams) == 1:
            self.streams[0].start = self.start
            yield from self.streams[0]
            return
        # How many samples each dataset gave before ``start``: replay the choices, no data read.
        taken = np.zeros(len(self.streams), dtype=np.int64)
        full, rest = divmod(self.start, self.CHUNK)
        for chunk in range(full):
            taken += np.bincount(self._choices(reader, chunk), minlength=len(self.streams))
        taken += np.bincount(self._choices(reader, full)[:rest], minlength=len(self.streams))
        iterators = []
        for stream, skip in zip(self.streams, taken):
            stream.start = int(skip)
            iterators.append(iter(stream))
        chunk, within = full, rest
        while True:
            for choice in self._choices(reader, chunk)[within:]:
                yield next(iterators[choice])
            chunk, within = chunk + 1, 0


class BatchStream(IterableDataset):
    """Collated batches of one rank: batch b is made by the reader of logical worker ``b % W``.

    The DataLoader asks its W workers in turn, starting with worker 0, so worker w plays
    logical worker ``(start + w) % W``: batch ``start`` still comes first after a resume,
    and every batch holds the same samples whatever batch the run started from.
    ``make_samples(first_sample, (logical_worker, W))`` builds that reader's sample stream.
    """

    def __init__(
        self,
        make_samples: Callable[[int, tuple[int, int]], IterableDataset],
        batch_size: int,
        collate: Callable[[list[dict[str, Any]]], Any],
        start: int = 0,
    ) -> None:
        self.make_samples, self.batch_size, self.collate, self.start = make_samples, batch_size, collate, start

    def __iter__(self) -> Iterator[Any]:
        worker, workers = dataloader_worker()
        logical = (self.start + worker) % workers
        consumed = (self.start + worker) // workers  # batches of this logical worker before ``start``
        samples = iter(self.make_samples(consumed * self.batch_size, (logical, workers)))
        while True:
            batch = [next(samples) for _ in range(self.batch_size)]
            yield self.collate(batch)


def _seed_worker(worker_id: int) -> None:
    # Anything that still draws from the global generators gets a distinct stream per worker.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def batch_loader(dataset: IterableDataset, num_workers: int) -> Iterator[Any]:
    """An endless iterator over a dataset that yields whole batches (``BatchStream``)."""
    # Pinned batches let to_device's non_blocking copies overlap the GPU's work.
    return iter(
        DataLoader(
            dataset,
            batch_size=None,
            num_workers=num_workers,
            worker_init_fn=_seed_worker,
            persistent_workers=num_workers > 0,
            prefetch_factor=2 if num_workers else None,
            pin_memory=torch.cuda.is_available(),
        )
    )


def shard_loader(
    shard_paths: Sequence[Shard | str],
    batch_size: int,
    collate: Callable[[list[dict[str, Any]]], Any],
    *,
    rank: int,
    world_size: int,
    seed: int,
    shuffle_buffer: int,
    num_workers: int,
) -> Iterator[Any]:
    """An endless iterator of collated training batches from ``shard_paths``."""
    stream = ShardStream(
        shard_paths, rank=rank, world_size=world_size, seed=seed, shuffle_buffer=shuffle_buffer, loop=True
    )
    return iter(
        DataLoader(
            stream,
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=num_workers,
            drop_last=True,
            persistent_workers=num_workers > 0,
            worker_init_fn=_seed_worker,
            pin_memory=torch.cuda.is_available(),
        )
    )


def to_device(
    batch: dict[str, torch.Tensor], device: torch.device, float_dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Move tensors to ``device``; floating ones to ``float_dtype`` too (the engine's, e.g. bf16).

    A uint8 ``image`` (the pre-training collates') is normalised here, after the copy: 4x fewer bytes
    to move, and the arithmetic on the device.
    """

    def move(value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if float_dtype is not None and value.is_floating_point():
            return value.to(device, dtype=float_dtype, non_blocking=True)
        return value.to(device, non_blocking=True)

    moved = {k: move(v) for k, v in batch.items()}
    if "image" in moved and moved["image"].dtype == torch.uint8:
        moved["image"] = normalize_images(moved["image"]).to(float_dtype or torch.float32)
    return moved
