"""Decode a soundtrack to mono float32 at a fixed rate, from an audio file or a video's audio stream.

Inputs: anything FFmpeg demuxes: wav, mp3, flac, m4a, ogg, and the audio stream of mp4 / mkv / webm /
avi / mov files. The first (FFmpeg's "best") audio stream is decoded, resampled to
``sample_rate_hz`` by libswresample, and its channels are averaged (stereo -> (L + R) / 2), as the
official decord path does (``AudioReader(..., sample_rate=16000)`` then a channel mean). Nothing is
trimmed: an AAC track keeps its whole last frame (the parity fixture decodes to 32768 samples for
32000 written), because the official features were computed that way.

A video without an audio stream, and a frame folder, are *reported* (``has_audio=False`` with an
empty waveform), never silently replaced by zeros as the official code does; the caller chooses
the policy.

Errors: :class:`~r1omni.media.MediaError`, naming the file and the cause, for a missing, empty,
unreadable or non-media file, a file with neither audio nor video, a container cut short
(packets end well before the declared duration), a decoder error, a stream that decodes to no
samples, or samples that are not finite. ``sample_rate_hz < 1`` is a programming error (``ValueError``).

Not here: log-mel features or any model-specific processing (see ``r1omni.models``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from r1omni.media._container import PacketSpan, audio_stream, ffmpeg_reason, open_input, video_stream
from r1omni.media.errors import MediaError
from r1omni.media.video import FRAME_SUFFIXES

__all__ = ["Audio", "load_audio", "has_audio_stream"]


@dataclass
class Audio:
    """A decoded soundtrack, or the statement that there is none."""

    waveform: np.ndarray = field(repr=False)  # (S,) float32 mono at sample_rate_hz; empty without audio
    sample_rate_hz: int
    has_audio: bool

    @property
    def duration_seconds(self) -> float:
        return len(self.waveform) / self.sample_rate_hz

    def __iter__(self) -> Iterator:  # allows ``waveform, sample_rate_hz = load_audio(...)``
        return iter((self.waveform, self.sample_rate_hz))


def _no_audio(sample_rate_hz: int) -> Audio:
    return Audio(np.zeros(0, np.float32), sample_rate_hz, has_audio=False)


def _check_frame_folder(path: Path) -> None:
    """A folder is accepted (as a video without sound) only if it is a frame folder."""
    try:
        has_images = any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())
    except PermissionError:
        raise MediaError(path, "permission denied (folder is not readable)") from None
    if not has_images:
        raise MediaError(path, "is a directory without images, not a media file or frame folder")


def has_audio_stream(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an audio stream (False for a frame folder). Decodes nothing."""
    path = Path(path)
    if path.is_dir():
        _check_frame_folder(path)
        return False
    with open_input(path) as container:
        return audio_stream(container) is not None


def load_audio(path: str | os.PathLike, sample_rate_hz: int = 16000) -> Audio:
    """Decode the audio of ``path`` to ``(S,)`` float32 mono at ``sample_rate_hz``.

    Returns ``Audio(has_audio=False)`` with an empty waveform for a video without sound or a frame
    folder; raises :class:`MediaError` naming the file otherwise (see the module docstring).
    """
    if sample_rate_hz < 1:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    path = Path(path)
    if path.is_dir():
        _check_frame_folder(path)
        return _no_audio(sample_rate_hz)
    with open_input(path) as container:
        stream = audio_stream(container)
        if stream is None:
            if video_stream(container) is None:
                raise MediaError(path, "no audio or video stream")
            return _no_audio(sample_rate_hz)
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate_hz)
        chunks: list[np.ndarray] = []
        span = PacketSpan()
        try:
            # Demux every stream (not only audio) so that the truncation check sees all of them.
            for packet in container.demux():
                span.add(packet)
                if packet.stream.index != stream.index:
                    continue
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().mean(axis=0))      # (C, s) -> (s,)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as err:
            raise MediaError(path, f"corrupt or truncated file: reading the audio failed "
                                   f"({ffmpeg_reason(err)})") from None
        span.check(container, path)
    if not chunks:
        raise MediaError(path, "audio stream decodes to zero samples")
    waveform = np.concatenate(chunks).astype(np.float32, copy=False)          # (S,)
    if waveform.size == 0:
        raise MediaError(path, "audio stream decodes to zero samples")
    if not np.isfinite(waveform).all():
        raise MediaError(path, "audio stream decodes to non-finite samples (NaN or inf)")
    return Audio(waveform, sample_rate_hz, has_audio=True)
