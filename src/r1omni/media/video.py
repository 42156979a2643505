"""Decode the frames a model sees: ``num_frames`` frames at the official segment midpoints.

Index rule (HumanOmni ``mm_utils.py``): ``seg = (N - 1) / T``; ``idx_i = round(seg * (i + 0.5))``
with halves rounded up (the official code adds 1e-6 before rounding). N is the number of frames
in the stream (counted from packets when the container does not store it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from r1omni.media.errors import MediaError

__all__ = ["Frames", "sample_frames", "segment_midpoints", "FRAME_SUFFIXES", "FRAME_FOLDER_FPS"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Frame folders carry no timing; the official code assumes 3 fps for them.
FRAME_FOLDER_FPS = 3.0


@dataclass
class Frames:
    """Sampled frames and where they came from."""

    frames: np.ndarray            # (T, H, W, 3) uint8 RGB
    indices: np.ndarray           # (T,) int64 frame indices in the stream
    pts_seconds: np.ndarray       # (T,) float64 presentation times
    num_stream_frames: int
    fps: float

    def __iter__(self):  # allows ``frames, pts_seconds = sample_frames(...)``
        return iter((self.frames, self.pts_seconds))


def segment_midpoints(num_stream_frames: int, num_frames: int) -> np.ndarray:
    """Official uniform sampler: midpoints of ``num_frames`` equal segments of [0, N-1]."""
    if num_stream_frames <= 0 or num_frames <= 0:
        raise ValueError(f"need positive counts, got N={num_stream_frames}, T={num_frames}")
    seg = (num_stream_frames - 1) / num_frames
    return np.array([math.floor(seg * (i + 0.5) + 1e-6 + 0.5) for i in range(num_frames)], dtype=np.int64)


def _sample_folder(folder: Path, num_frames: int) -> Frames:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise MediaError(folder, f"frame folder holds no images ({', '.join(FRAME_SUFFIXES)})")
    indices = segment_midpoints(len(files), num_frames)
    frames = []
    for i in indices:
        try:
            with Image.open(files[i]) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except OSError as err:
            raise MediaError(files[i], f"unreadable image ({err})") from None
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise MediaError(folder, f"frames differ in size: {sorted(shapes)}")
    return Frames(np.stack(frames), indices, indices / FRAME_FOLDER_FPS, len(files), FRAME_FOLDER_FPS)


def sample_frames(path: str | os.PathLike, num_frames: int) -> Frames:
    """Decode ``num_frames`` RGB frames at the segment midpoints of a video file or a frame folder.

    Raises :class:`MediaError` naming the file for a missing, unreadable, corrupt or frame-less input.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        return _sample_folder(path, num_frames)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise MediaError(path, f"cannot open as media ({err})") from None
    with container:
        if not container.streams.video:
            raise MediaError(path, "no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        try:
            num_stream_frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            if num_stream_frames <= 0:
                raise MediaError(path, "video stream has zero frames")
            wanted = segment_midpoints(num_stream_frames, num_frames)
            container.seek(0)
            picked: dict[int, tuple[np.ndarray, float]] = {}
            last_needed = int(wanted.max())
            for index, frame in enumerate(container.decode(stream)):
                if index in set(wanted.tolist()):
                    picked[index] = (frame.to_ndarray(format="rgb24"), float(frame.time or 0.0))
                if index >= last_needed:
                    break
        except av.error.FFmpegError as err:
            raise MediaError(path, f"corrupt video stream ({err})") from None
        missing = [int(i) for i in wanted if int(i) not in picked]
        if missing:
            raise MediaError(path, f"truncated: stream declares {num_stream_frames} frames but "
                                   f"frame(s) {missing} could not be decoded")
    frames = np.stack([picked[int(i)][0] for i in wanted])
    pts = np.array([picked[int(i)][1] for i in wanted], dtype=np.float64)
    return Frames(frames, wanted, pts, num_stream_frames, fps)
