"""MSR-VTT retrieval: videos/all/videoN.mp4 and annotation/{train_val,test}_videodatainfo.json.

MSRVTT-QA (msrvtt_qa) asks its questions about the same videos.
"""

from __future__ import annotations

from dataclasses import dataclass

from x2vlm_core.data.synthetic.clips import Clip, clip_captions, clip_questions, mp4_bytes, sample_clip
from x2vlm_core.data.synthetic.datasets import VIDEO_RETRIEVAL
from x2vlm_core.data.synthetic.world import SourceEntries, World

VIDEOS = "msrvtt/videos/all"
SPLIT_FILES = (("train", "train_val"), ("test", "test"))


@dataclass(frozen=True)
class MsrvttVideo:
    index: int  # videoN
    split: str  # train | test
    clip: Clip
    captions: tuple[str, ...]  # 4, for MSR-VTT
    questions: tuple[tuple[str, str], ...]  # (question, answer), for MSRVTT-QA


def write_videos(world: World, count: int, seen: set[Clip]) -> list[MsrvttVideo]:
    """Draw and write the videos (the first ~70% train, the rest test), with their captions and questions."""
    rng = world.rng("msrvtt")
    test_from = max(1, min(count - 1, round(count * 0.7)))
    clips = []
    for index in range(count):
        clip = sample_clip(world.size, rng, seen)
        world.write_bytes(f"{VIDEOS}/video{index}.mp4", mp4_bytes(clip))
        clips.append(clip)
    # Captions and questions come from one random stream, video after video.
    return [
        MsrvttVideo(
            index,
            "train" if index < test_from else "test",
            clip,
            tuple(clip_captions(clip, rng, 4)),
            tuple(clip_questions(clip, rng)),
        )
        for index, clip in enumerate(clips)
    ]


def write(world: World, videos: list[MsrvttVideo]) -> SourceEntries:
    sources = []
    sentence_id = 0
    for split, file_name in SPLIT_FILES:
        infos, sentences = [], []
        for video in (v for v in videos if v.split == split):
            infos.append(
                {
                    "category": video.index % 20,
                    "url": f"https://example.invalid/msrvtt/{video.index}",
                    "video_id": f"video{video.index}",
                    "start time": 0.0,
                    "end time": video.clip.frames / 8,
                    "split": split,
                    "id": video.index,
                }
            )
            for caption in video.captions:
                sentences.append({"caption": caption, "video_id": f"video{video.index}", "sen_id": sentence_id})
                sentence_id += 1
        info = {"contributor": "x2vlm synthetic shapes world", "year": 2016, "version": "1.0"}
        relative = f"msrvtt/annotation/{file_name}_videodatainfo.json"
        world.write_json(relative, {"info": info, "videos": infos, "sentences": sentences})
        world.counts[VIDEO_RETRIEVAL][split] += len(infos)
        sources.append(
            {
                "format": "msrvtt",
                "dataset": VIDEO_RETRIEVAL,
                "annotations": world.path(relative),
                "videos": world.path(VIDEOS),
            }
        )
    return sources
