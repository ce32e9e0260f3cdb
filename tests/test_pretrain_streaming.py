"""Shard streams: per-rank/worker splits, shuffling, exact positions for resume, mixing, gs://."""

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from x2vlm_core import storage
from x2vlm_core.data.shard_writer import write_shard
from x2vlm_core.data.shards import iter_shard_samples, list_shards
from x2vlm_core.data.streaming import (
    BatchStream,
    MixedStream,
    Shard,
    ShardStream,
    batch_loader,
    dataset_shards,
    to_device,
)
from x2vlm_core.data.transforms import image_to_tensor, image_to_uint8
from x2vlm_core.errors import ConfigError, DataError

DATASETS = ("pretrain_image_text", "pretrain_region_text")


def one_shard_copy(src: Path, dst: Path) -> Path:
    """The pre-training datasets of ``src`` rewritten as one shard each (fewer shards than ranks)."""
    index = {"datasets": {}}
    for dataset in DATASETS:
        info = write_shard(dst / dataset / "train-00000.tar", iter_shard_samples(list_shards(src, dataset, "train")))
        index["datasets"][dataset] = {
            "train": {
                "count": info["count"],
                "shards": [{"path": f"{dataset}/train-00000.tar", "count": info["count"], "sha256": info["sha256"]}],
            }
        }
    (dst / "index.json").write_text(json.dumps(index))
    return dst


def _keys(stream, n):
    return [s["key"] for s in islice(iter(stream), n)]


def test_resuming_at_a_position_gives_the_same_samples_across_epochs(tiny_shards):
    shards = dataset_shards(str(tiny_shards), "pretrain_image_text")
    total = sum(s.count for s in shards)
    for world_size in (1, 2, 3):  # whole shards per rank (1, 2) and every n-th sample (3 > 2 shards)
        for rank in range(world_size):

            def make(start: int, rank: int = rank, world_size: int = world_size) -> ShardStream:
                return ShardStream(
                    shards,
                    rank=rank,
                    world_size=world_size,
                    seed=5,
                    shuffle_buffer=16,
                    loop=True,
                    start=start,
                    name="s",
                )

            run = _keys(make(0), total + 20)
            assert _keys(make(7), 30) == run[7:37]
            assert _keys(make(total - 3), 10) == run[total - 3 : total + 7]  # into the next epoch
    one_epoch = _keys(ShardStream(shards, seed=5, shuffle_buffer=16), 10**6)
    assert sorted(one_epoch) == sorted(s["key"] for s in iter_shard_samples([s.path for s in shards]))
    second = _keys(ShardStream(shards, seed=5, shuffle_buffer=16, loop=True, start=total), total)
    assert second != one_epoch and sorted(second) == sorted(one_epoch)  # a new shuffle each epoch


def test_ranks_split_the_data_and_their_batches_add_up_to_one_ranks(tiny_shards, tmp_path):
    shards = dataset_shards(str(tiny_shards), "pretrain_image_text")
    per_rank = [set(_keys(ShardStream(shards, rank=r, world_size=2, seed=1, shuffle_buffer=8), 10**6)) for r in (0, 1)]
    assert not per_rank[0] & per_rank[1] and len(per_rank[0] | per_rank[1]) == sum(s.count for s in shards)

    # Fewer shards than ranks: rank r takes every other sample, so the global batch does not depend on ranks.
    one = dataset_shards(str(one_shard_copy(tiny_shards, tmp_path)), "pretrain_image_text")
    keys = lambda b: [s["key"] for s in b]  # noqa: E731
    single = BatchStream(
        lambda start, worker: ShardStream(one, seed=1, shuffle_buffer=8, loop=True, start=start, worker=worker), 8, keys
    )
    halves = [
        BatchStream(
            lambda start, worker, r=r: ShardStream(
                one, rank=r, world_size=2, seed=1, shuffle_buffer=8, loop=True, start=start, worker=worker
            ),
            4,
            keys,
        )
        for r in (0, 1)
    ]
    for whole, first, second in islice(zip(single, *halves), 20):
        assert sorted(whole) == sorted(first + second)


def test_dataloader_workers_take_turns_and_resume_at_a_batch(tiny_shards):
    shards = dataset_shards(str(tiny_shards), "pretrain_image_text")

    def loader(start, workers):
        def make(first, worker):
            return ShardStream(shards, seed=3, shuffle_buffer=8, loop=True, start=first, worker=worker)

        return batch_loader(BatchStream(make, 4, lambda b: [s["seed"] for s in b], start=start), workers)

    run = list(islice(loader(0, 2), 9))
    assert list(islice(loader(5, 2), 4)) == run[5:9]
    assert list(islice(loader(4, 2), 4)) == run[4:8]
    flat = [seed for batch in run for seed in batch]
    assert len(set(flat)) == len(flat)  # the two workers read different samples


def test_mixed_streams_follow_their_ratios_and_resume(tiny_shards):
    def mixed(start):
        streams = [
            ShardStream(dataset_shards(str(tiny_shards), d), seed=2, shuffle_buffer=4, loop=True, name=d)
            for d in DATASETS
        ]
        return MixedStream(streams, [3, 1], seed=2, name="mix", start=start)

    run = [s["seed"] for s in islice(iter(mixed(0)), 400)]
    share = sum("pretrain_image_text" in seed for seed in run) / len(run)
    assert 0.68 < share < 0.82
    assert [s["seed"] for s in islice(iter(mixed(123)), 50)] == run[123:173]
    with pytest.raises(ConfigError, match="one ratio per dataset"):
        MixedStream(mixed(0).streams, [1], seed=0, name="mix")


def test_shards_stream_from_gcs(tiny_shards, gcs_bucket):
    for path in storage.list_uris(tiny_shards):
        relative = Path(path).relative_to(tiny_shards).as_posix()
        if relative == "index.json" or relative.startswith("pretrain_image_text/"):
            storage.write_bytes(f"{gcs_bucket}/shards/{relative}", Path(path).read_bytes())
    remote = dataset_shards(f"{gcs_bucket}/shards", "pretrain_image_text")
    assert remote[0].path.startswith("gs://")
    local = dataset_shards(str(tiny_shards), "pretrain_image_text")
    assert [s.count for s in remote] == [s.count for s in local]
    assert _keys(ShardStream(remote, seed=4, shuffle_buffer=8, start=5), 20) == _keys(
        ShardStream(local, seed=4, shuffle_buffer=8, start=5), 20
    )


def test_a_shard_path_without_samples_is_refused(tmp_path):
    with pytest.raises(DataError, match="index.json does not exist; run prepare-data"):
        dataset_shards(str(tmp_path), "pretrain_image_text")
    (tmp_path / "index.json").write_text(
        json.dumps({"datasets": {"pretrain_image_text": {"train": {"count": 0, "shards": []}}}})
    )
    with pytest.raises(DataError, match="pretrain_image_text/train lists no samples"):
        dataset_shards(str(tmp_path), "pretrain_image_text")
    with pytest.raises(DataError, match="no dataset 'pretrain_region_text'.*available"):
        dataset_shards(str(tmp_path), "pretrain_region_text")
    with pytest.raises(DataError, match="no samples in the shards"):
        ShardStream([Shard(str(tmp_path / "a.tar"), 0)])


def test_to_device_normalises_uint8_images_as_evaluation_does():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8))
    pixels = image_to_uint8(image).unsqueeze(0)
    masks = torch.ones(1, 5, dtype=torch.long)
    moved = to_device({"image": pixels, "text_atts": masks}, torch.device("cpu"))
    assert torch.equal(moved["image"], image_to_tensor(image, 20).unsqueeze(0)) and moved["text_atts"] is masks
    half = to_device({"image": pixels}, torch.device("cpu"), torch.bfloat16)["image"]
    assert half.dtype == torch.bfloat16 and torch.equal(half, moved["image"].to(torch.bfloat16))
    floats = torch.randn(1, 3, 4, 4)  # already normalised (fine-tuning batches): left as they are
    assert torch.equal(to_device({"image": floats}, torch.device("cpu"))["image"], floats)
