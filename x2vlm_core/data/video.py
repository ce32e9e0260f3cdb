"""Video files for data preparation: pick frames, decode them with PyAV, and write small clips.

A video sample keeps ``num_frames`` frames (X²-VLM's ``frame_len``), chosen the way X²-VLM
chooses them at evaluation: the video is cut into ``num_frames`` equal segments and the first
frame of each is kept, so the choice is deterministic and spans the whole clip. Shorter videos
repeat their frames in order.

PyAV (``av`` on PyPI) bundles FFmpeg with its codecs, so no system FFmpeg is needed.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from x2vlm_core import storage
from x2vlm_core.data.images import EMPTY_FILE, MISSING_FILE, UNDECODABLE
from x2vlm_core.errors import ConfigError

DEFAULT_NUM_FRAMES = 3  # X²-VLM's frame_len
CLIP_FPS = 8


def frame_indices(total: int, count: int) -> list[int]:
    """Which of ``total`` frames to keep: the first frame of each of ``count`` near-equal segments."""
    if count < 1:
        raise ConfigError(f"num_frames={count}: a video sample needs at least one frame; pass num_frames >= 1")
    if total < 1:
        return []
    if total <= count:
        return sorted(i % total for i in range(count))
    # The first (total % count) segments are one frame longer, so the segments tile the video exactly.
    base, longer = divmod(total, count)
    starts, cursor = [], 0
    for segment in range(count):
        starts.append(cursor)
        cursor += base + (1 if segment < longer else 0)
    return starts


def _import_av():
    try:
        import av
    except ImportError:
        raise ConfigError("video sources need PyAV: pip install 'av==18.1.0'") from None
    return av


def load_video_frames(path: str | Path, num_frames: int) -> tuple[list[Image.Image] | None, str | None]:
    """Decode the ``num_frames`` chosen frames of a video as RGB images; ``(frames, None)`` or ``(None, reason)``.

    The frames are counted from the demuxed packets first (cheap, no decoding), then only the
    chosen ones are converted, so long videos do not fill memory.
    """
    av = _import_av()
    if storage.is_gcs(path):
        # Read whole from its object (a clip is a few MB): PyAV opens it twice, to count and to decode.
        try:
            data = storage.read_bytes(str(path))
        except storage.NotFound:
            return None, MISSING_FILE
        if not data:
            return None, EMPTY_FILE

        def open_video() -> Any:
            return av.open(io.BytesIO(data))
    else:
        local = Path(path)
        if not local.is_file():
            return None, MISSING_FILE
        if local.stat().st_size == 0:
            return None, EMPTY_FILE

        def open_video() -> Any:
            return av.open(str(local))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_video() as container:
                if not container.streams.video:
                    return None, UNDECODABLE
                stream = container.streams.video[0]
                total = sum(1 for packet in container.demux(stream) if packet.size)
            wanted = frame_indices(total, num_frames)
            if not wanted:
                return None, UNDECODABLE
            chosen: dict[int, Image.Image] = {}
            with open_video() as container:
                for position, frame in enumerate(container.decode(video=0)):
                    if position in wanted:
                        chosen[position] = frame.to_image().convert("RGB")
                    if position >= wanted[-1]:
                        break
    except (av.error.FFmpegError, OSError, ValueError, IndexError, EOFError):
        return None, UNDECODABLE
    if any(index not in chosen for index in wanted):
        return None, UNDECODABLE  # fewer decodable frames than packets: a damaged stream
    return [chosen[index] for index in wanted], None


def encode_mp4(frames: Sequence[np.ndarray | Image.Image], fps: int = CLIP_FPS) -> bytes:
    """MPEG-4 Part 2 video in an MP4 file, single-threaded at a fixed quantiser, so the same frames give the same bytes.

    (x264 was tried first: its output differed between runs now and then, even single-threaded.)
    """
    av = _import_av()
    arrays = [
        np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame, dtype=np.uint8)
        for frame in frames
    ]
    if not arrays:
        raise ConfigError("encode_mp4: no frames to encode; pass at least one frame")
    height, width = arrays[0].shape[:2]
    if width % 2 or height % 2:
        raise ConfigError(f"encode_mp4: {width}x{height} frames; yuv420p video needs even width and height")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"threads": "1", "qscale": "2"}
        stream.codec_context.flags |= av.codec.context.Flags.qscale
        for array in arrays:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
