"""MSRVTT-QA over the MSR-VTT videos: {train,test}_qa.json, two one-word-answer questions per video."""

from __future__ import annotations

from x2vlm_core.data.synthetic.datasets import VIDEO_QA
from x2vlm_core.data.synthetic.formats.msrvtt import SPLIT_FILES, VIDEOS, MsrvttVideo
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, videos: list[MsrvttVideo]) -> SourceEntries:
    sources = []
    question_id = 0
    for split, _ in SPLIT_FILES:
        questions = []
        for video in (v for v in videos if v.split == split):
            for question, answer in video.questions:
                questions.append(
                    {
                        "answer": answer,
                        "category_id": video.index % 20,
                        "id": question_id,
                        "question": question,
                        "video_id": video.index,
                    }
                )
                question_id += 1
        relative = f"msrvtt_qa/{split}_qa.json"
        world.write_json(relative, questions)
        world.counts[VIDEO_QA][split] += len(questions)
        sources.append(
            {
                "format": "msrvtt_qa",
                "dataset": VIDEO_QA,
                "split": split,
                "annotations": world.path(relative),
                "videos": world.path(VIDEOS),
            }
        )
    return sources
