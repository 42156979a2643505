"""Opening media files, picking their streams and spotting truncation; each problem a :class:`MediaError`.

Private to ``r1omni.media``: ``video``, ``audio`` and ``probe`` share these checks so that a
missing, empty, unreadable, non-media or cut-short file is reported the same way whatever is asked
of it. This module decodes nothing (``PacketSpan`` only looks at demuxed packets).
"""

from __future__ import annotations

import errno
import math
import os
import stat
from pathlib import Path

import av

from r1omni.media.errors import MediaError

__all__ = ["check_file", "open_input", "video_stream", "audio_stream", "ffmpeg_reason", "PacketSpan"]

# A container whose packets end this much before its declared duration is truncated (the larger of
# the two; a last frame's or audio packet's missing duration is far below either).
TRUNCATION_MIN_SECONDS = 0.5
TRUNCATION_FRACTION = 0.1
_ATTACHED_PIC = av.stream.Disposition.attached_pic  # cover art: a "video" stream that is no video


def ffmpeg_reason(err: av.error.FFmpegError) -> str:
    """FFmpeg's own words for an error, without the file name PyAV appends (the caller adds it)."""
    return err.strerror or type(err).__name__


def check_file(path: Path) -> None:
    """Raise :class:`MediaError` unless ``path`` is an existing, readable, non-empty regular file.

    One ``stat`` answers all of it, so the cause is the real one: ``Path.exists`` says False for a
    symlink loop as for a missing file, and a FIFO has size 0 like an empty file (opening it would
    block until a writer comes)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MediaError(path, _not_found(path)) from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise MediaError(path, "symbolic link loop (the link points back to itself)") from None
        raise MediaError(path, f"cannot read the file ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise MediaError(path, "is a directory, not a media file")
    if not stat.S_ISREG(info.st_mode):
        raise MediaError(path, f"not a regular file (a {_file_kind(info.st_mode)}); give a media file")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "permission denied (file is not readable)")
    if info.st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")


def _not_found(path: Path) -> str:
    if path.is_symlink():
        return "file not found (a broken symbolic link: its target does not exist)"
    return "file not found"


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "FIFO / named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"))
    return next((name for test, name in kinds if test(mode)), "special file")


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing; the caller closes it (``with open_input(p) as container``)."""
    check_file(path)
    try:
        return av.open(str(path), mode="r")
    except PermissionError:
        raise MediaError(path, "permission denied (file is not readable)") from None
    except av.error.FFmpegError as err:
        raise MediaError(path, f"not a readable media file ({ffmpeg_reason(err)})") from None
    except OSError as err:
        raise MediaError(path, f"cannot open ({err.strerror or err})") from None


def video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The stream a player would show, ignoring cover art (an mp3's attached picture is no video).

    Like decord (``av_find_best_stream``), this is FFmpeg's "best" video stream, not simply the first.
    """
    streams = [s for s in container.streams.video if not s.disposition & _ATTACHED_PIC]
    if not streams:
        return None
    best = container.streams.best("video")
    return best if best is not None and best.index in {s.index for s in streams} else streams[0]


def audio_stream(container: av.container.InputContainer) -> av.AudioStream | None:
    """FFmpeg's "best" audio stream (as decord's ``AudioReader`` picks it), or None."""
    if not container.streams.audio:
        return None
    return container.streams.best("audio") or container.streams.audio[0]


class PacketSpan:
    """Tracks what a file's packets cover, over all streams, to catch a file cut short.

    Feed it every demuxed packet, then call :meth:`check`. A cut mkv / webm / flac / mp3 (and an mp4
    whose index is at the front) opens and demuxes without any error: only the declared duration,
    or the declared frame count of a video stream (mp4, mov, avi), gives it away. Formats that
    declare neither (wav, ogg, raw streams: FFmpeg derives their duration from what is there)
    cannot be checked.

    Fewer video packets than declared frames means a cut only when the packets also stop before the
    stream's declared end: an AVI whose encoder dropped a frame counts the empty slot in its header
    but demuxes no packet for it, leaving a gap in the timestamps of a complete file.
    """

    def __init__(self) -> None:
        self.end_seconds = -math.inf
        self.num_packets: dict[int, int] = {}  # stream index -> packets seen
        self.stream_end: dict[int, int] = {}   # stream index -> latest pts + duration (stream time base)

    def add(self, packet: av.Packet) -> None:
        if packet.size == 0:  # PyAV's end-of-stream flush packets
            return
        index = packet.stream.index
        self.num_packets[index] = self.num_packets.get(index, 0) + 1
        if packet.pts is not None and packet.time_base is not None:
            end_units = packet.pts + (packet.duration or 0)
            self.stream_end[index] = max(self.stream_end.get(index, end_units), end_units)
            self.end_seconds = max(self.end_seconds, float(end_units * packet.time_base))

    def check(self, container: av.container.InputContainer, path: Path) -> None:
        """Raise :class:`MediaError` when the packets fall short of what the headers declare."""
        for stream in container.streams.video:
            found = self.num_packets.get(stream.index, 0)
            if (stream.frames and found < stream.frames and not stream.disposition & _ATTACHED_PIC
                    and not self._reaches_declared_end(stream)):
                raise MediaError(path, f"truncated: video stream {stream.index} declares {stream.frames} "
                                       f"frames but the file holds {found}")
        if not container.duration or not math.isfinite(self.end_seconds):
            return  # nothing declared (raw streams, live recordings) or no timestamps: nothing to compare
        declared_seconds = container.duration / av.time_base
        covered_seconds = self.end_seconds - (container.start_time or 0) / av.time_base
        margin_seconds = max(TRUNCATION_MIN_SECONDS, TRUNCATION_FRACTION * declared_seconds)
        if covered_seconds < declared_seconds - margin_seconds:
            raise MediaError(path, f"truncated: the container declares {declared_seconds:.2f} s but its "
                                   f"packets end at {covered_seconds:.2f} s")

    def _reaches_declared_end(self, stream: av.VideoStream) -> bool:
        """Whether the stream's packets run to its declared duration, less one frame (a last packet
        may carry no duration); False when the stream declares no duration or rate."""
        if not stream.duration or not stream.average_rate or stream.index not in self.stream_end:
            return False
        frame_units = 1 / (float(stream.average_rate) * float(stream.time_base))
        covered_units = self.stream_end[stream.index] - (stream.start_time or 0)
        return covered_units >= stream.duration - frame_units
