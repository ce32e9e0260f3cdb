"""Stream samples from webdataset shards: split across ranks, shuffled, reproducible."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from x2vlm_core.data.shards import iter_shard_samples


class ShardStream(IterableDataset):
    """Yields shard samples for this rank and worker.

    With at least as many shards as readers, each reader takes whole shards; with
    fewer (small local runs), each reader takes every n-th sample instead, so no
    rank ever starves. ``loop=True`` repeats epochs forever with a new shuffle each.
    """

    def __init__(self, shard_paths: list[str], *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle_buffer: int = 0, loop: bool = False) -> None:
        self.shard_paths = list(shard_paths)
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle_buffer, self.loop = seed, shuffle_buffer, loop

    def _reader(self) -> tuple[int, int]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def _epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        reader, readers = self._reader()
        paths = list(self.shard_paths)
        rng = random.Random(self.seed + epoch)
        if self.shuffle_buffer:
            rng.shuffle(paths)
        if len(paths) >= readers:
            stream = iter_shard_samples(paths[reader::readers])
        else:
            stream = (s for i, s in enumerate(iter_shard_samples(paths)) if i % readers == reader)
        yield from _shuffled(stream, self.shuffle_buffer, rng) if self.shuffle_buffer else stream

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = 0
        while True:
            yield from self._epoch(epoch)
            epoch += 1
            if not self.loop:
                return


def _shuffled(stream: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    buffer: list[Any] = []
    for item in stream:
        buffer.append(item)
        if len(buffer) >= size:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


def shard_loader(shard_paths: list[str], batch_size: int, collate: Callable[[list[dict[str, Any]]], Any], *,
                 rank: int, world_size: int, seed: int, shuffle_buffer: int, num_workers: int) -> Iterator[Any]:
    """An endless iterator of collated training batches from ``shard_paths``."""
    stream = ShardStream(shard_paths, rank=rank, world_size=world_size, seed=seed,
                         shuffle_buffer=shuffle_buffer, loop=True)
    return iter(DataLoader(stream, batch_size=batch_size, collate_fn=collate, num_workers=num_workers,
                           drop_last=True, persistent_workers=num_workers > 0))


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
