"""One raw record -> a sample (empty texts dropped, pictures decoded, checked, resized, re-encoded) or a reject."""

from __future__ import annotations

from typing import Any

from x2vlm_core.data.images import TOO_LARGE, encode_jpeg, load_and_validate, resize_max_side, validate_size
from x2vlm_core.data.readers import VIDEO_KINDS
from x2vlm_core.data.readers.common import drop_empty_texts
from x2vlm_core.data.shard_writer import shard_meta
from x2vlm_core.data.video import DEFAULT_NUM_FRAMES, load_video_frames
from x2vlm_core.dataprep.boxes import fit_record_boxes
from x2vlm_core.dataprep.dedup import content_sha256
from x2vlm_core.dataprep.outcomes import REJECTED, SAMPLES, Outcome, reject


def process_record(record: dict[str, Any], max_image_side: int, num_frames: int = DEFAULT_NUM_FRAMES) -> Outcome:
    """``(SAMPLES, sample)`` with the pictures resized and re-encoded, or ``(REJECTED, reject)``.

    A sample keeps its pixels under ``images`` and, for dedup and statistics, its
    ``content_sha256``, ``original_sizes``, ``texts_dropped`` and ``boxes`` (boxes clipped and
    dropped, by outcome); ``meta`` is what its shard stores. Boxes are fitted to the original image.
    """
    if record.get("reader_reject"):
        return REJECTED, reject(record, record["reader_reject"])
    record, texts_dropped, reason = drop_empty_texts(record)
    if reason is not None:
        return REJECTED, reject(record, reason)
    images, sizes, original_sizes, scale = [], [], [], 1.0
    boxes: dict[str, int] = {}
    try:
        pictures, reason = decode_pictures(record, num_frames)
        if reason is None and pictures and ("bbox" in record or "regions" in record or "proposals" in record):
            # Boxes are fitted to the original image, before it is resized.
            record, boxes, box_reason = fit_record_boxes(record, pictures[0].size)
            if box_reason is not None:
                return REJECTED, {**reject(record, box_reason), "boxes": boxes}
        for image in [] if reason else pictures:
            original_sizes.append(image.size)
            image, scale = resize_max_side(image, max_image_side)
            sizes.append(image.size)
            images.append(encode_jpeg(image))
    except MemoryError:  # one picture too big for this worker is that record's reject, never the job's failure
        reason = TOO_LARGE
    if reason is not None:
        return REJECTED, reject(record, reason)
    digest = content_sha256(images, record)
    if record["kind"] in VIDEO_KINDS:
        record = {**record, "num_frames": len(images)}
    return SAMPLES, {
        "key": record["key"],
        "dataset": record["dataset"],
        "source": record["source"],
        "split": record["split"],
        "image_paths": record["image_paths"],
        "original_sizes": original_sizes,
        "content_sha256": digest,
        "meta": shard_meta({k: v for k, v in record.items() if k != "reader_reject"}, sizes, scale),
        "images": images,
        "texts_dropped": texts_dropped,
        "boxes": boxes,
    }


def decode_pictures(record: dict[str, Any], num_frames: int) -> tuple[list[Any], str | None]:
    """The record's pictures: its images, or ``num_frames`` frames of its video; or the reason they are unusable."""
    if record["kind"] in VIDEO_KINDS:
        frames, reason = load_video_frames(record["image_paths"][0], num_frames)
        if reason is not None:
            return [], reason
        assert frames is not None  # decoding without a reject yields the frames
        for frame in frames:
            _, reason = validate_size(frame)
            if reason is not None:
                return [], reason
        return frames, None
    pictures = []
    for name in record["image_paths"]:
        image, reason = load_and_validate(name)
        if reason is not None:
            return [], reason
        pictures.append(image)
    return pictures, None
