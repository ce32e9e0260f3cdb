"""``generate_shapes_world``: every format writer in turn, then sources.yaml from what they wrote, and the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from x2vlm_core.data.synthetic.clips import Clip
from x2vlm_core.data.synthetic.formats import (
    caption_tsv,
    cclm_image_text,
    coco_captions,
    iglue,
    img2dataset_files,
    img2dataset_webdataset,
    karpathy,
    marvl,
    msrvtt,
    msrvtt_qa,
    nlvr2,
    parallel_tsv,
    refcoco,
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
from x2vlm_core.data.synthetic.scenes import MIN_IMAGE_SIZE
from x2vlm_core.data.synthetic.world import World
from x2vlm_core.errors import ConfigError

SOURCES_HEADER = "# prepare-data sources for the synthetic shapes world (x2vlm_core.data.synthetic)\n"


def generate_shapes_world(
    out_dir: str | Path, num_images: int = 320, seed: int = 0, image_size: int = 64
) -> dict[str, Any]:
    """Write the shapes world under ``out_dir``; return the manifest (also written as manifest.json).

    ``num_images`` COCO images (shared by captions, Karpathy, VQA, RefCOCO+ and the translated
    captions), ``num_images // 2`` Visual Genome images and NLVR2 image pairs, ``num_images // 16``
    images for each web-scale format (img2dataset tars, img2dataset files, TSV, X²-VLM image-text
    and region-text json-lines), and ``num_images // 16`` videos each for WebVid and MSR-VTT
    (at least 2 of each). ``sources.yaml`` lists every source for prepare-data with absolute paths;
    the manifest gives the records each dataset yields per split.
    """
    if num_images < 1:
        raise ConfigError(f"num_images={num_images}: the shapes world needs at least 1 image; pass num_images >= 1")
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(
            f"image_size={image_size}: too small to draw 3 separate shapes; pass image_size >= {MIN_IMAGE_SIZE}"
        )
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    world = World(root, seed, image_size)

    # The order of the calls is part of the output: the writers draw from one scene sampler (no scene
    # twice), and sources.yaml lists the entries in the order the writers return them.
    coco_images = coco_captions.write_images(world, num_images)
    sources = coco_captions.write(world, coco_images)
    sources += karpathy.write(world, coco_images)
    vg_images = visual_genome.write_images(world, max(1, num_images // 2))
    sources += visual_genome.write(world, vg_images)
    sources += vqa_v2.write(world, coco_images)
    sources += nlvr2.write(world, max(1, num_images // 2))
    sources += refcoco.write(world, coco_images)
    sources += visual_genome_objects.write(world, vg_images)
    web = max(2, num_images // 16)
    sources += img2dataset_webdataset.write(world, web)
    sources += img2dataset_files.write(world, web)
    sources += caption_tsv.write(world, web)
    sources += x2vlm_image_text.write(world, web)
    sources += x2vlm_region_text.write(world, web)
    sources += cclm_image_text.write(world, coco_images)
    sources += parallel_tsv.write(world, coco_images)
    clips: set[Clip] = set()  # shared, so WebVid and MSR-VTT never hold the same clip
    sources += webvid.write(world, web, clips)
    msrvtt_videos = msrvtt.write_videos(world, web, clips)
    sources += msrvtt.write(world, msrvtt_videos)
    sources += msrvtt_qa.write(world, msrvtt_videos)
    iglue_parts = iglue.write_images(world, coco_images)
    for iglue_format in (xvnli, xgqa, marvl, xflickrco):
        sources += iglue_format.write(world, iglue_parts)

    sources_yaml = yaml.safe_dump({"sources": sources}, sort_keys=False, width=1000)
    world.write_bytes("sources.yaml", (SOURCES_HEADER + sources_yaml).encode("utf-8"))

    datasets = {
        dataset: {split: count for split, count in sorted(counts.items()) if count}
        for dataset, counts in sorted(world.counts.items())
    }
    manifest = {
        "generator": "x2vlm_core.data.synthetic.generate_shapes_world",
        "seed": seed,
        "num_images": num_images,
        "image_size": image_size,
        "datasets": datasets,
        "total": sum(sum(splits.values()) for splits in datasets.values()),
    }
    world.write_bytes("manifest.json", json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8") + b"\n")
    return manifest
