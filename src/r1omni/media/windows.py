"""Windows of a long recording, decoded in one pass with memory bounded by a window, not by the file.

An hour of 16 kHz audio alone is 230 MB as float32, and its frames far more, so a long recording is
never decoded whole. :func:`read_windows` demuxes the file once, front to back, and yields one
:class:`Window` per requested span as soon as both streams have passed the span's end: the
``num_frames`` frames nearest the midpoints of the span's equal segments (the rule
:func:`~r1omni.media.sample_frames` follows for a whole clip), and the span's audio resampled to
16 kHz mono (channels averaged, as :func:`~r1omni.media.load_audio` does). Only the audio of the
spans still open and their candidate frames are held. Spans may overlap and leave gaps; they are
sorted by start.

Spans: :func:`fixed_spans` cuts a duration into windows of one length with an overlap;
:func:`utterance_spans` finds utterances with the voice-activity detector faster-whisper bundles
(:func:`r1omni.media.transcribe.speech_spans`), reading the audio in blocks so that memory stays
bounded there too, and cuts utterances longer than a window into windows.

Times are seconds from the first packet of each stream (recordings start at 0). Errors are
:class:`~r1omni.media.MediaError`\\ s naming the file. A file cut short (its packets end well before
the duration its headers declare) is found as whole-file decoding finds it, but only at the end of
the pass: the windows before are yielded first, then the error is raised instead of the last windows.
Frames larger than 4K are scaled down as they are decoded (:func:`~r1omni.media.video.cap_frame`).
Not here: frame folders (a folder is no long recording), seeking (one forward pass is cheaper than a
seek per window for windows that tile a file).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from r1omni.media._container import PacketSpan, audio_stream, ffmpeg_reason, open_input, video_stream
from r1omni.media.errors import MediaError
from r1omni.media.video import cap_frame

__all__ = ["Window", "fixed_spans", "utterance_spans", "read_windows", "audio_blocks"]

SAMPLE_RATE_HZ = 16000


@dataclass
class Window:
    """One span of a recording, decoded."""

    index: int
    start_seconds: float
    end_seconds: float
    frames: np.ndarray | None = field(repr=False)     # (T, H, W, 3) uint8 RGB; None without video
    waveform: np.ndarray | None = field(repr=False)   # (S,) float32 16 kHz mono; None without audio


def fixed_spans(duration_seconds: float, window_seconds: float, overlap_seconds: float = 0.0
                ) -> list[tuple[float, float]]:
    """Windows of ``window_seconds`` every ``window_seconds - overlap_seconds``; the last one ends at the
    end (shorter; a remainder under a quarter window goes to the window before it instead).

    >>> fixed_spans(10, 4)
    [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    >>> fixed_spans(8.5, 4)
    [(0.0, 4.0), (4.0, 8.5)]
    >>> fixed_spans(9, 4, overlap_seconds=2)
    [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 9.0)]
    """
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    if not 0 <= overlap_seconds < window_seconds:
        raise ValueError(f"overlap_seconds must be in [0, window_seconds), got {overlap_seconds}")
    if not duration_seconds > 0:
        raise ValueError(f"duration_seconds must be positive, got {duration_seconds}")
    hop = window_seconds - overlap_seconds
    spans = []
    start = 0.0
    while True:
        end = min(start + window_seconds, float(duration_seconds))
        spans.append((round(start, 6), round(end, 6)))
        if end >= duration_seconds:
            break
        start += hop
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < window_seconds / 4:   # too short to answer on its own
        spans.pop()
        spans[-1] = (spans[-1][0], round(float(duration_seconds), 6))
    return spans


def audio_blocks(path: str | os.PathLike, block_seconds: float = 30.0) -> Iterator[tuple[float, np.ndarray]]:
    """``(start_seconds, waveform)`` blocks of the 16 kHz mono soundtrack, in order, ``block_seconds``
    each (the last shorter): the audio of a long file without holding all of it."""
    path = Path(path)
    block = int(block_seconds * SAMPLE_RATE_HZ)
    if block < 1:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    with open_input(path) as container:
        stream = audio_stream(container)
        if stream is None:
            return
        pending: list[np.ndarray] = []
        held, emitted = 0, 0
        for chunk in _decode_audio(container, stream, path):
            pending.append(chunk)
            held += len(chunk)
            while held >= block:
                joined = np.concatenate(pending)
                yield emitted / SAMPLE_RATE_HZ, joined[:block]
                emitted += block
                pending, held = [joined[block:]], len(joined) - block
        if held:
            yield emitted / SAMPLE_RATE_HZ, np.concatenate(pending)


def utterance_spans(path: str | os.PathLike, window_seconds: float, block_seconds: float = 30.0,
                    min_silence_seconds: float = 0.5) -> list[tuple[float, float]]:
    """Utterances found by the voice-activity detector, each cut into windows of at most
    ``window_seconds``. The audio is read in blocks of ``block_seconds``; an utterance that crosses a
    block boundary is joined again when the detector's spans meet there."""
    from r1omni.media.transcribe import speech_spans

    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    merged: list[list[float]] = []
    for offset, waveform in audio_blocks(path, block_seconds):
        for start, end in speech_spans(waveform, SAMPLE_RATE_HZ, min_silence_seconds=min_silence_seconds):
            start, end = start + offset, end + offset
            if merged and start <= merged[-1][1] + 0.05:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
    spans = []
    for start, end in merged:
        pieces = max(1, math.ceil((end - start) / window_seconds - 1e-9))
        step = (end - start) / pieces
        spans.extend((round(start + i * step, 6), round(start + (i + 1) * step, 6)) for i in range(pieces))
    return spans


def _decode_audio(container: av.container.InputContainer, stream: av.AudioStream, path: Path
                  ) -> Iterator[np.ndarray]:
    """The soundtrack as consecutive 16 kHz mono float32 chunks (channels averaged); a file cut short
    raises :class:`MediaError` after its last chunk (every stream is demuxed, so that the check sees
    all of them)."""
    resampler = av.AudioResampler(format="fltp", layout=None, rate=SAMPLE_RATE_HZ)
    span = PacketSpan()
    try:
        for packet in container.demux():
            span.add(packet)
            if packet.stream.index != stream.index:
                continue
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    yield out.to_ndarray().mean(axis=0).astype(np.float32, copy=False)
        for out in resampler.resample(None):
            yield out.to_ndarray().mean(axis=0).astype(np.float32, copy=False)
    except av.error.FFmpegError as err:
        raise MediaError(path, f"corrupt file: reading the audio failed ({ffmpeg_reason(err)})") from None
    span.check(container, path)


class _OpenSpan:
    """A span being filled: the best frame per target time so far, and whether each stream passed its end."""

    def __init__(self, index: int, start: float, end: float, num_frames: int, has_video: bool,
                 has_audio: bool) -> None:
        self.index, self.start, self.end = index, start, end
        self.targets = [start + (i + 0.5) * (end - start) / num_frames for i in range(num_frames)]
        self.best: list[tuple[float, av.VideoFrame] | None] = [None] * num_frames
        self.video_done, self.audio_done = not has_video, not has_audio

    def offer(self, time: float, frame: av.VideoFrame) -> None:
        for i, target in enumerate(self.targets):
            distance = abs(time - target)
            if self.best[i] is None or distance < self.best[i][0]:
                self.best[i] = (distance, frame)

    def offer_missing(self, time: float, frame: av.VideoFrame) -> None:
        self.best = [entry if entry is not None else (abs(time - target), frame)
                     for entry, target in zip(self.best, self.targets)]

    def frames(self) -> np.ndarray | None:
        chosen = [entry[1] for entry in self.best if entry is not None]
        if len(chosen) < len(self.best):
            return None
        return np.stack([frame.to_ndarray(format="rgb24") for frame in chosen])   # (T, H, W, 3)


def read_windows(path: str | os.PathLike, spans: list[tuple[float, float]], num_frames: int,
                 with_video: bool = True, with_audio: bool = True) -> Iterator[Window]:
    """One :class:`Window` per span, in order, from a single pass over ``path`` (see the module docstring).

    A stream the file lacks (or ``with_video`` / ``with_audio`` turns off) is None in every window; a
    span the video does not reach gets the nearest frames before it.
    """
    path = Path(path)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if any(end <= start for start, end in spans) or any(b[0] < a[0] for a, b in zip(spans, spans[1:])):
        raise ValueError("spans must be (start, end) pairs with end > start, sorted by start")
    with open_input(path) as container:
        video = video_stream(container) if with_video else None
        audio = audio_stream(container) if with_audio else None
        if video is None and audio is None:
            raise MediaError(path, "no stream to read (no video or audio stream, or both turned off)")
        if video is not None:
            video.thread_type = "AUTO"
        yield from _Reader(path, container, video, audio, spans, num_frames).run()


class _Reader:
    """The single pass of :func:`read_windows`: opens spans as the streams reach them, closes them in order."""

    def __init__(self, path: Path, container, video, audio, spans, num_frames: int) -> None:
        self.path, self.container, self.video, self.audio = path, container, video, audio
        self.spans, self.num_frames = spans, num_frames
        self.open: deque[_OpenSpan] = deque()
        self.next_span = 0
        self.audio_chunks: deque[tuple[int, np.ndarray]] = deque()   # (first sample index, samples)
        self.audio_samples = 0
        self.video_start: float | None = None
        self.last_frame: tuple[float, av.VideoFrame] | None = None

    def run(self) -> Iterator[Window]:
        wanted = {s.index for s in (self.video, self.audio) if s is not None}
        resampler = av.AudioResampler(format="fltp", layout=None, rate=SAMPLE_RATE_HZ) if self.audio else None
        span = PacketSpan()
        try:
            # Every stream is demuxed (the unread ones are not decoded) so that the truncation check
            # compares all of them with the declared duration, as a whole-file decode does.
            for packet in self.container.demux():
                span.add(packet)
                if packet.stream.index not in wanted:
                    continue
                if self.video is not None and packet.stream.index == self.video.index:
                    for frame in packet.decode():
                        self._video_frame(frame)
                else:
                    for frame in packet.decode():
                        for out in resampler.resample(frame):
                            self._audio_chunk(out.to_ndarray().mean(axis=0).astype(np.float32, copy=False))
                yield from self._closed()
            if resampler is not None:
                for out in resampler.resample(None):
                    self._audio_chunk(out.to_ndarray().mean(axis=0).astype(np.float32, copy=False))
        except av.error.FFmpegError as err:
            raise MediaError(self.path, f"corrupt file: decoding failed ({ffmpeg_reason(err)})") from None
        # A file cut short is refused before its last windows, which would answer from what is left.
        span.check(self.container, self.path)
        self._open_up_to(math.inf)
        for span in self.open:   # the end of the file closes every span; one past the last frame gets that frame
            if self.last_frame is not None:
                span.offer_missing(*self.last_frame)
            span.video_done = span.audio_done = True
        yield from self._closed()
        if self.next_span < len(self.spans) or self.open:
            raise MediaError(self.path, "internal: spans left unread")

    def _open_up_to(self, time: float) -> None:
        """Open every span that starts by ``time`` plus its own length (its first target may lie that far back)."""
        while self.next_span < len(self.spans):
            start, end = self.spans[self.next_span]
            if start - (end - start) > time:
                break
            self.open.append(_OpenSpan(self.next_span, start, end, self.num_frames, self.video is not None,
                                       self.audio is not None))
            self.next_span += 1

    def _video_frame(self, frame: av.VideoFrame) -> None:
        time = float(frame.time) if frame.time is not None else 0.0
        frame = cap_frame(frame)   # candidates are held until their span closes: keep them small
        if self.video_start is None:
            self.video_start = time
        time -= self.video_start
        self.last_frame = (time, frame)
        self._open_up_to(time)
        for span in self.open:
            if not span.video_done:
                span.offer(time, frame)
                if time >= span.end:
                    span.video_done = True

    def _audio_chunk(self, samples: np.ndarray) -> None:
        self.audio_chunks.append((self.audio_samples, samples))
        self.audio_samples += len(samples)
        heard = self.audio_samples / SAMPLE_RATE_HZ
        self._open_up_to(heard)
        for span in self.open:
            if heard >= span.end:
                span.audio_done = True

    def _waveform(self, start: float, end: float) -> np.ndarray:
        first, last = round(start * SAMPLE_RATE_HZ), round(end * SAMPLE_RATE_HZ)
        pieces = [chunk[max(first - at, 0):max(last - at, 0)] for at, chunk in self.audio_chunks
                  if at < last and at + len(chunk) > first]
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def _closed(self) -> Iterator[Window]:
        """Windows of the leading spans both streams have passed, in span order; audio no open span needs is dropped."""
        while self.open and self.open[0].video_done and self.open[0].audio_done:
            span = self.open.popleft()
            waveform = self._waveform(span.start, span.end) if self.audio is not None else None
            yield Window(span.index, span.start, span.end, span.frames() if self.video is not None else None,
                         waveform if waveform is None or waveform.size else None)
            upcoming = [s.start for s in self.open] + [start for start, _ in self.spans[self.next_span:][:1]]
            keep_from = min(upcoming, default=math.inf) * SAMPLE_RATE_HZ
            while self.audio_chunks and self.audio_chunks[0][0] + len(self.audio_chunks[0][1]) <= keep_from:
                self.audio_chunks.popleft()
