"""Decode a soundtrack to 16 kHz mono float32, from an audio file or a video's audio stream.

A video without an audio stream is *reported* (``has_audio=False``), never silently replaced by
zeros as the official code does; the caller chooses the policy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from r1omni.media.errors import MediaError

__all__ = ["Audio", "load_audio", "has_audio_stream"]


@dataclass
class Audio:
    waveform: np.ndarray      # (S,) float32 mono at sample_rate_hz; empty when has_audio is False
    sample_rate_hz: int
    has_audio: bool

    @property
    def duration_seconds(self) -> float:
        return len(self.waveform) / self.sample_rate_hz

    def __iter__(self):  # allows ``waveform, sample_rate_hz = load_audio(...)``
        return iter((self.waveform, self.sample_rate_hz))


def has_audio_stream(path: str | os.PathLike) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError) as err:
        raise MediaError(path, f"cannot open as media ({err})") from None


def load_audio(path: str | os.PathLike, sample_rate_hz: int = 16000) -> Audio:
    """Decode the first audio stream, resampled to ``sample_rate_hz``, channels averaged to mono."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        return Audio(np.zeros(0, np.float32), sample_rate_hz, has_audio=False)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise MediaError(path, f"cannot open as media ({err})") from None
    with container:
        if not container.streams.audio:
            return Audio(np.zeros(0, np.float32), sample_rate_hz, has_audio=False)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate_hz)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as err:
            raise MediaError(path, f"corrupt audio stream ({err})") from None
    if not chunks:
        raise MediaError(path, "audio stream decodes to zero samples")
    waveform = np.concatenate(chunks).astype(np.float32)
    return Audio(np.nan_to_num(waveform), sample_rate_hz, has_audio=True)
