"""WebVid: results_2M_train.csv (videoid,contentUrl,duration,page_dir,name) + videos/<page_dir>/<videoid>.mp4."""

from __future__ import annotations

import csv
import io

from x2vlm_core.data.synthetic.clips import Clip, clip_captions, mp4_bytes, sample_clip
from x2vlm_core.data.synthetic.datasets import PRETRAIN_VIDEO_TEXT
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, count: int, seen: set[Clip]) -> SourceEntries:
    rng = world.rng("webvid")
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
    for index in range(count):
        clip = sample_clip(world.size, rng, seen)
        video_id = str(1_000_000_000 + index)
        first = index // 50 * 50 + 1
        page_dir = f"{first:06d}_{first + 49:06d}"
        world.write_bytes(f"webvid/videos/{page_dir}/{video_id}.mp4", mp4_bytes(clip))
        caption = clip_captions(clip, rng, 1)[0]
        duration = f"PT00H00M{clip.frames // 8:02d}S"
        writer.writerow([video_id, f"https://example.invalid/webvid/{video_id}.mp4", duration, page_dir, caption])
    world.write_bytes("webvid/results_2M_train.csv", table.getvalue().encode("utf-8"))
    world.counts[PRETRAIN_VIDEO_TEXT]["train"] += count
    return [
        {
            "format": "webvid",
            "dataset": PRETRAIN_VIDEO_TEXT,
            "annotations": world.path("webvid/results_2M_train.csv"),
            "videos": world.path("webvid/videos"),
        }
    ]
