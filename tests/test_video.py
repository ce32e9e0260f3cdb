"""Video frames: which frames are kept, decoding real MP4/WebM files with PyAV, and broken videos."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from x2vlm_core.data.video import encode_mp4, frame_indices, load_video_frames
from x2vlm_core.errors import ConfigError


def _frames(count: int, size: int = 32) -> list[np.ndarray]:
    """A bright square that moves right by 2 px per frame, so each frame's index can be read back."""
    frames = []
    for index in range(count):
        frame = np.full((size, size, 3), 20, np.uint8)
        frame[8:16, 2 * index : 2 * index + 8] = 230
        frames.append(frame)
    return frames


def _square_x(image) -> int:
    row = np.asarray(image.convert("L"))[12]
    return int(np.argmax(row > 128))


def test_frame_indices_tile_the_video_like_x2vlm_evaluation() -> None:
    assert frame_indices(9, 3) == [0, 3, 6]
    assert frame_indices(10, 3) == [0, 4, 7]  # the first segment takes the extra frame
    assert frame_indices(3, 3) == [0, 1, 2]
    assert frame_indices(2, 5) == [0, 0, 0, 1, 1]  # short videos repeat frames, in order
    assert frame_indices(0, 3) == []
    with pytest.raises(ConfigError, match="num_frames=0"):
        frame_indices(5, 0)


def test_mp4_round_trip_keeps_the_chosen_frames(tmp_path: Path) -> None:
    data = encode_mp4(_frames(8))
    assert data == encode_mp4(_frames(8))  # same frames, same bytes
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    frames, reason = load_video_frames(path, 3)
    assert reason is None and [f.size for f in frames] == [(32, 32)] * 3
    assert [_square_x(f) for f in frames] == [2 * i for i in frame_indices(8, 3)]
    one, _ = load_video_frames(path, 1)
    assert len(one) == 1 and _square_x(one[0]) == 0


def test_webm_decodes_too(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for frame in _frames(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path = tmp_path / "clip.webm"
    path.write_bytes(buffer.getvalue())
    frames, reason = load_video_frames(path, 4)
    assert reason is None and len(frames) == 4
    assert [_square_x(f) for f in frames] == [2 * i for i in frame_indices(5, 4)]


def test_broken_videos_are_rejected_with_a_reason(tmp_path: Path) -> None:
    assert load_video_frames(tmp_path / "absent.mp4", 3) == (None, "missing_file")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert load_video_frames(empty, 3) == (None, "empty_file")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 8)
    assert load_video_frames(garbage, 3) == (None, "undecodable")
    whole = encode_mp4(_frames(8))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[: len(whole) // 3])
    assert load_video_frames(truncated, 3) == (None, "undecodable")
    with pytest.raises(ConfigError, match="even width and height"):
        encode_mp4([np.zeros((31, 32, 3), np.uint8)])
