"""Pre-training: image-text, region-text, video-text and text-only streams from shards, weighted summed losses.

Every step takes one batch from each active stream (``train.data.*``): image-text pairs
(augmented), region texts (crop-around-box sampler, exact-size batch), video clips
(``frame_len`` sampled frames), sentence pairs (CCLM) or single texts (VLMo's text stage).
A stream may mix several prepared datasets by ``ratios``. Which streams a model family trains
on, their default datasets and their objectives are the family's (``ModelFamily.pretrain``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from x2vlm_core.config_io import to_dict
from x2vlm_core.data.streaming import BatchStream, MixedStream, Shard, ShardStream, batch_loader, dataset_shards
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, family_of
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.train.config import StreamConfig, TrainConfig
from x2vlm_core.train.distributed import DistInfo, init_distributed
from x2vlm_core.train.engine import micro_batch_size
from x2vlm_core.train.loop import run_training
from x2vlm_core.train.pretrain_objective import mixed_stream_losses
from x2vlm_core.train.seed import seed_everything
from x2vlm_core.train.streams import active_streams, resolve_streams


def check_pretrain_config(model_cfg: ModelConfig, cfg: TrainConfig, world_size: int) -> dict[str, int]:
    """Refuse settings that cannot run, each with how to fix it; returns the per-rank micro-batch sizes."""
    cfg = resolve_streams(model_cfg, cfg)
    streams = active_streams(cfg)
    if not streams:
        raise ConfigError(
            "no pre-training stream is on: list datasets in train.data.image_text, "
            "train.data.region_text, train.data.video_text, train.data.parallel_text or train.data.text"
        )
    for name in streams:
        stream: StreamConfig = getattr(cfg.data, name)
        assert stream.datasets is not None  # resolve_streams filled it
        if stream.ratios and len(stream.ratios) != len(stream.datasets):
            raise ConfigError(
                f"train.data.{name}: {len(stream.datasets)} datasets but {len(stream.ratios)} ratios; "
                "give one ratio per dataset (or none for equal ratios)"
            )
        if stream.loss_weight < 0:
            raise ConfigError(f"train.data.{name}.loss_weight must be >= 0, got {stream.loss_weight}")
    if cfg.steps < 0 or cfg.log_every < 1 or cfg.save_every < 0 or cfg.shuffle_buffer < 0 or cfg.num_workers < 0:
        raise ConfigError("train.steps, save_every, shuffle_buffer and num_workers must be >= 0 and log_every >= 1")
    low, high = (list(cfg.augment.crop_scale) + [0, 0])[:2]
    if len(cfg.augment.crop_scale) != 2 or not 0 < low <= high <= 1:
        raise ConfigError(
            f"train.augment.crop_scale {cfg.augment.crop_scale} must be [low, high] with 0 < low <= high <= 1"
        )
    micro = {}
    if "image_text" in streams:
        micro["image_text"] = micro_batch_size(cfg.batch_size, cfg, world_size, "train.batch_size")
    if "region_text" in streams:
        micro["region_images"] = micro_batch_size(cfg.region_batch_images, cfg, world_size, "train.region_batch_images")
        micro["region_text"] = micro_batch_size(cfg.region_batch_size, cfg, world_size, "train.region_batch_size")
        if cfg.max_regions < 1 or cfg.region_batch_images * cfg.max_regions < cfg.region_batch_size:
            raise ConfigError(
                f"train.region_batch_size={cfg.region_batch_size} does not fit in region_batch_images="
                f"{cfg.region_batch_images} x max_regions={cfg.max_regions} texts; every batch would repeat texts. "
                "Raise region_batch_images or max_regions, or lower region_batch_size"
            )
    if "video_text" in streams:
        if not getattr(model_cfg, "frame_len", 0):
            raise ConfigError(
                f"train.data.video_text is on but model {model_cfg.name} has no frames "
                "(frame_len 0); use a *_video preset or set model.frame_len=3"
            )
        micro["video_text"] = micro_batch_size(
            cfg.video_batch_size or cfg.batch_size, cfg, world_size, "train.video_batch_size"
        )
    for name in ("parallel_text", "text"):
        if name in streams:
            micro[name] = micro_batch_size(
                cfg.text_batch_size or cfg.batch_size, cfg, world_size, "train.text_batch_size"
            )
    return micro


def _samples(
    start: int,
    worker: tuple[int, int],
    shards: list[list[Shard]],
    names: list[str],
    ratios: list[float],
    name: str,
    cfg: TrainConfig,
    rank: int,
    world_size: int,
) -> MixedStream:
    streams = [
        ShardStream(
            s,
            rank=rank,
            world_size=world_size,
            seed=cfg.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            loop=True,
            name=f"{name}/{dataset}",
            worker=worker,
        )
        for s, dataset in zip(shards, names)
    ]
    return MixedStream(streams, ratios, seed=cfg.seed, name=name, start=start)


def _stream_batches(
    name: str, shards_root: str, collate, micro_batch: int, cfg: TrainConfig, info: DistInfo
) -> Callable[[int], Iterator[Any]]:
    """A function of the batches already consumed → this rank's endless batch iterator for the stream."""
    stream: StreamConfig = getattr(cfg.data, name)
    assert stream.datasets is not None  # resolve_streams filled it
    shards = [dataset_shards(stream.shards or shards_root, dataset, stream.split) for dataset in stream.datasets]
    ratios = stream.ratios or [1.0] * len(stream.datasets)
    make_samples = functools.partial(
        _samples,
        shards=shards,
        names=list(stream.datasets),
        ratios=ratios,
        name=name,
        cfg=cfg,
        rank=info.rank,
        world_size=info.world_size,
    )

    def batches(consumed: int) -> Iterator[Any]:
        return batch_loader(BatchStream(make_samples, micro_batch, collate, start=consumed), cfg.num_workers)

    return batches


def run_pretrain(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    shards_root: str | Path | None,
    output_dir: str | Path,
    checkpoint_dir: str | Path,
    init: str | None = None,
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    shards_root = str(shards_root or cfg.data.shards or "")
    if not shards_root:
        raise ConfigError(
            "no shards given: pass --shards (a prepare-data output folder or gs:// prefix) or set train.data.shards"
        )
    cfg = resolve_streams(model_cfg, cfg)
    info = init_distributed()
    micro = check_pretrain_config(model_cfg, cfg, info.world_size)
    seed_everything(cfg.seed + info.rank)
    recipe = family_of(model_cfg).pretrain
    model = create_model(model_cfg)
    recipe.start(model, cfg, init)  # (VLMo: freezes what the stage keeps) before the optimizer sees it
    collates = recipe.collates(model_cfg, cfg, micro.get("region_text", 0))
    streams = active_streams(cfg)
    samples_per_batch = dict(micro)
    if "region_images" in micro:  # region_text is on: its batches are drawn as this many images
        samples_per_batch["region_text"] = micro["region_images"]
    per_stream = [
        _stream_batches(name, shards_root, collates[name], samples_per_batch[name], cfg, info) for name in streams
    ]

    def batches(consumed: int) -> Iterator[tuple[dict[str, Any], ...]]:
        return zip(*(stream(consumed) for stream in per_stream))

    weights = tuple(getattr(cfg.data, name).loss_weight for name in streams)
    losses = recipe.losses()

    def objective(step: int):
        with_itm = not (cfg.stop_itm_after and step >= cfg.stop_itm_after)
        return functools.partial(
            mixed_stream_losses, streams=tuple(streams), weights=weights, with_itm=with_itm, stream_losses=losses
        )

    # What must not change for a checkpoint's data position to point at the same samples.
    layout = {
        "seed": cfg.seed,
        "shuffle_buffer": cfg.shuffle_buffer,
        "num_workers": cfg.num_workers,
        "streams": {
            name: {
                **{k: v for k, v in to_dict(getattr(cfg.data, name)).items() if k != "shards"},
                "micro_batch": samples_per_batch[name],
            }
            for name in streams
        },
    }
    return run_training(
        model,
        objective,
        batches,
        cfg,
        info,
        output_dir,
        checkpoint_dir,
        micro_batch=micro.get("image_text") or max(micro.values()),
        description="pretrain",
        resume_settings=layout,
        checkpoint_uri=checkpoint_uri,
    )
