"""Builders of small generated media for the media tests (imported by ``conftest`` and the tests)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CONTAINERS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
FPS = 25
NUM_FRAMES = 75           # 3 s at 25 fps
KEYFRAME_INTERVAL = 12    # several GOPs, so seeking has keyframes to land on
SAMPLE_RATE_HZ = 16000
VFR_DURATIONS_MS = np.tile([40, 20, 80, 40, 60, 20], 10)  # frame durations of the variable-rate clip


def smooth_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8: a per-frame grey level plus a moving colour ramp; easy for lossy codecs,
    and every frame differs from its neighbours, so a wrong frame index shows."""
    t = np.arange(num_frames)[:, None, None]
    x = np.arange(width)[None, None, :]
    y = np.arange(height)[None, :, None]
    red = (40 + 2 * t + x) % 256 + 0 * y
    green = np.broadcast_to(60 + 3 * t % 120, red.shape)
    blue = (80 + y + t) % 256 + 0 * x
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def tone(seconds: float, frequency_hz: float = 440.0, amplitude: float = 0.4) -> np.ndarray:
    samples = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (amplitude * np.sin(2 * np.pi * frequency_hz * samples)).astype(np.float32)


def encode_x264(path: Path, frames: np.ndarray, x264_params: str, pts_ms: np.ndarray | None = None) -> Path:
    """Write frames with libx264 and explicit x264 settings; ``pts_ms`` gives timestamps in ms
    (default: 25 fps). The container follows the suffix (.h264 is a raw stream)."""
    time_base = Fraction(1, 1000) if pts_ms is not None else Fraction(1, FPS)
    pts = pts_ms if pts_ms is not None else np.arange(len(frames))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = time_base
        stream.options = {"preset": "veryfast", "x264-params": x264_params}
        for frame_rgb, frame_pts in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
            frame.pts, frame.time_base = int(frame_pts), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
