"""MSR-VTT retrieval (``train_val_videodatainfo.json`` / ``test_videodatainfo.json``, or the combined
``MSRVTT_data.json``): ``videos`` [{video_id, split}] + ``sentences`` [{video_id, caption}].

One ``video_text`` record per video with all its captions; the split is the video's own.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, field_list, key_part, load_json, record_key
from x2vlm_core.data.sources import SAFE_NAME, Source, SourceFormat
from x2vlm_core.errors import DataError

KIND = "video_text"
FORMAT = SourceFormat(("annotations",), ("videos",), default_split=None, options={"video_extension": "mp4"})


def read(source: Source) -> Iterator[dict]:
    path, videos, extension = source.path("annotations"), source.path("videos"), source.options["video_extension"]
    data = load_json(path)
    entries = field_list(data, "videos", path, "the top level")
    known = {field(video, "video_id", path, f"videos[{i}]", str) for i, video in enumerate(entries)}
    captions: dict[str, list[str]] = defaultdict(list)
    for i, sentence in enumerate(field_list(data, "sentences", path, "the top level")):
        video_id = field(sentence, "video_id", path, f"sentences[{i}]", str)
        if video_id not in known:
            raise DataError(f"{path}: sentences[{i}] refers to {video_id!r}, which 'videos' does not list")
        captions[video_id].append(field(sentence, "caption", path, f"sentences[{i}]", str).strip())
    for i, video in enumerate(entries):
        video_id = video["video_id"]
        split = field(video, "split", path, f"videos[{i}]", str)
        if not SAFE_NAME.fullmatch(split) or not SAFE_NAME.fullmatch(video_id):
            raise DataError(
                f"{path}: videos[{i}] has video_id {video_id!r} / split {split!r}; expected names like video7010 / train"
            )
        record = base_record(
            source, record_key("msrvtt", key_part(video_id), path), KIND, split, [videos / f"{video_id}.{extension}"]
        )
        record.update(video_id=video_id, captions=captions.get(video_id, []))
        yield record
