"""Decode the frames a model sees: ``num_frames`` RGB frames at the official segment midpoints.

Index rule (HumanOmni ``mm_utils.frame_sample``): ``seg = (N - 1) / T``; ``idx_i = round(seg * (i + 0.5))``
with halves rounded up (the official code adds 1e-6 before rounding). Indices may repeat when the
stream has fewer frames than ``T``. Letters: T sampled frames, N frames in the stream, H x W pixels.

N, the frame count, is ``stream.frames`` when the container stores it (mp4, mov, avi), as decord
reports it; otherwise (mkv, webm, raw streams) it is the number of video packets, counted by
demuxing the file, which reads it but decodes nothing. decord would estimate N from duration x fps
for such containers; the packet count is exact. A complete file that stores more frames than it
holds packets (an AVI counts a dropped frame's empty slot, for which no packet exists) has N = its
packets: the frames that can be decoded.

How frames are found. Every file is demuxed once (no decoding) into a table of video packet
timestamps and keyframe flags; the same pass checks the file is not cut short. When that table is
clean (every packet has a timestamp, none is repeated, the count equals N, no packet is flagged
corrupt or discarded, the stream starts on a keyframe, and each run of packets from one keyframe
to the next covers a contiguous block of presentation times, i.e. closed GOPs), frame ``k`` is the
packet with the k-th smallest timestamp. For each group of wanted frames the decoder then seeks to
the keyframe of their group (``container.seek(pts, backward=True, any_frame=False)``) and decodes
forward to them, skipping non-reference frames (no other frame is predicted from those), and
checks that the seek landed on a planned keyframe, that frames come out in increasing timestamp
order and that every wanted frame comes out. Timestamps, not ``index / fps``, identify frames, so
variable-frame-rate files seek too. Any doubt (no timestamps, a seek that fails or lands elsewhere,
a frame out of order) falls back to decoding from the start, whose k-th frame is frame ``k`` by
definition; both paths return identical frames (tested on mp4, mov, mkv, webm, avi and a
variable-rate mkv). ``Frames.decode_mode`` says which path ran. This assumes that decoding from
the start yields one frame per packet, in timestamp order, which holds for well-formed files.

A folder of images (jpg/png/bmp/webp, sorted by file name) is a video at 3 fps, as the official
code assumes; other files in the folder are ignored.

Errors: every failure raises :class:`~r1omni.media.MediaError` naming the file (or the image in a
folder) and the cause: file not found, not readable, empty, not a media file, no video stream
(e.g. an audio-only file), zero frames, truncated (the container declares more frames or a longer
duration than its packets hold, or a wanted frame cannot be decoded), corrupt data (decoder error
or a frame flagged as damaged), a folder without images, frame sizes that change. Frames are never
padded, repeated or replaced to hide a problem. ``num_frames < 1`` is a programming error
(``ValueError``).

Frames over :data:`MAX_FRAME_PIXELS` (larger than 4K UHD) are scaled down to that many pixels as they
are converted to RGB, aspect ratio kept: a 193 KB file of two 8192 x 8192 frames would otherwise cost
gigabytes, and every model here resizes frames to a few hundred pixels anyway. Frames up to 4K are
returned as decoded.

Not here: resizing to a model's input size, normalisation or any model-specific preprocessing (see
``r1omni.models``); audio (``r1omni.media.audio``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

from r1omni.media._container import PacketSpan, ffmpeg_reason, open_input, video_stream
from r1omni.media.errors import MediaError

__all__ = ["Frames", "sample_frames", "segment_midpoints", "FRAME_SUFFIXES", "FRAME_FOLDER_FPS", "MAX_FRAME_PIXELS",
           "capped_size", "cap_frame"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Frame folders carry no timing; the official code assumes 3 fps for them.
FRAME_FOLDER_FPS = 3.0
MAX_FRAME_PIXELS = 3840 * 2160
"""Largest frame kept as decoded (4K UHD); larger ones are scaled down to this many pixels."""


def capped_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` scaled down, aspect kept, to at most :data:`MAX_FRAME_PIXELS` pixels.

    >>> capped_size(8192, 8192), capped_size(1920, 1080)
    ((2880, 2880), (1920, 1080))
    """
    if width * height <= MAX_FRAME_PIXELS:
        return width, height
    scale = math.sqrt(MAX_FRAME_PIXELS / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def cap_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """``frame`` itself, or a copy scaled to :func:`capped_size` (same pixel format, area averaging)."""
    size = capped_size(frame.width, frame.height)
    if size == (frame.width, frame.height):
        return frame
    return frame.reformat(width=size[0], height=size[1], interpolation="AREA")


@dataclass
class Frames:
    """Sampled frames and where they came from."""

    frames: np.ndarray = field(repr=False)  # (T, H, W, 3) uint8 RGB
    indices: np.ndarray           # (T,) int64 frame indices in the stream, non-decreasing
    pts_seconds: np.ndarray       # (T,) float64 presentation times (container clock; index / fps
    #                               when the stream has no timestamps; NaN if neither is known)
    num_stream_frames: int        # N, see the module docstring
    fps: float                    # average frame rate (3.0 for folders; 0.0 if the file states none)
    decode_mode: str = "sequential"  # "seek", "sequential" (decoded from the start) or "folder"
    num_decoded_frames: int = 0   # frames out of the decoder to get these (a cost figure; images read for folders)

    def __iter__(self) -> Iterator[np.ndarray]:  # allows ``frames, pts_seconds = sample_frames(...)``
        return iter((self.frames, self.pts_seconds))


def segment_midpoints(num_stream_frames: int, num_frames: int) -> np.ndarray:
    """Official uniform sampler: midpoints of ``num_frames`` equal segments of [0, N-1], halves up.

    >>> segment_midpoints(50, 8).tolist()
    [3, 9, 15, 21, 28, 34, 40, 46]
    >>> segment_midpoints(4, 2).tolist()  # midpoints 0.75 and 2.25
    [1, 2]
    >>> segment_midpoints(10, 3).tolist()  # midpoints 1.5, 4.5, 7.5 round up
    [2, 5, 8]
    """
    if num_stream_frames <= 0 or num_frames <= 0:
        raise ValueError(f"need positive counts, got N={num_stream_frames}, T={num_frames}")
    seg = (num_stream_frames - 1) / num_frames
    return np.array([math.floor(seg * (i + 0.5) + 1e-6 + 0.5) for i in range(num_frames)], dtype=np.int64)


def sample_frames(path: str | os.PathLike, num_frames: int, *, seek: bool = True) -> Frames:
    """Decode ``num_frames`` RGB frames at the segment midpoints of a video file or a frame folder.

    ``seek=False`` always decodes from the start (the reference the seeking path is tested
    against). Raises :class:`MediaError` naming the file for a missing, unreadable, corrupt,
    truncated or frame-less input (see the module docstring).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    path = Path(path)
    if path.is_dir():
        return _sample_folder(path, num_frames)
    with open_input(path) as container:
        stream = video_stream(container)
        if stream is None:
            what = "an audio-only file" if container.streams.audio else "no audio either"
            raise MediaError(path, f"no video stream ({what})")
        table = _read_packet_table(container, stream, path)   # raises when the file is cut short
        # Fewer packets than stored frames in a complete file: empty slots (dropped frames), not frames.
        num_stream_frames = min(stream.frames, len(table.pts)) if stream.frames and table.pts else \
            stream.frames or len(table.pts)
        if num_stream_frames <= 0:
            raise MediaError(path, "video stream has zero frames")
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        wanted = segment_midpoints(num_stream_frames, num_frames)
        decoded = None
        plan = _seek_plan(table, num_stream_frames) if seek else None
        if plan is not None:
            decoded = _decode_seeking(container, stream, plan, wanted)
        stream_index = stream.index
    mode = "seek"
    if decoded is None:
        mode = "sequential"
        decoded = _decode_sequential(path, stream_index, wanted, num_stream_frames)
    picked, num_decoded_frames = decoded
    shapes = {picked[int(i)][0].shape for i in wanted}
    if len(shapes) != 1:
        raise MediaError(path, f"frame size changes within the stream: {sorted(shapes)}")
    frames = np.stack([picked[int(i)][0] for i in wanted])                      # (T, H, W, 3)
    pts_seconds = np.array([picked[int(i)][1] for i in wanted], dtype=np.float64)
    pts_seconds = np.where(np.isnan(pts_seconds), wanted / fps if fps else np.nan, pts_seconds)
    return Frames(frames, wanted, pts_seconds, num_stream_frames, fps, mode, num_decoded_frames)


def _sample_folder(folder: Path, num_frames: int) -> Frames:
    try:
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES),
                       key=lambda p: p.name)
    except PermissionError:
        raise MediaError(folder, "permission denied (folder is not readable)") from None
    if not files:
        raise MediaError(folder, f"frame folder holds no images ({', '.join(FRAME_SUFFIXES)})")
    indices = segment_midpoints(len(files), num_frames)
    loaded: dict[int, np.ndarray] = {}
    for i in dict.fromkeys(indices.tolist()):
        try:
            with Image.open(files[i]) as image:
                loaded[i] = np.asarray(_capped_image(image).convert("RGB"))
        except OSError as err:  # PIL's UnidentifiedImageError and truncated-file errors are OSErrors
            raise MediaError(files[i], f"unreadable image ({err})") from None
    shapes = {a.shape for a in loaded.values()}
    if len(shapes) != 1:
        raise MediaError(folder, f"frames differ in size: {sorted(shapes)}")
    frames = np.stack([loaded[int(i)] for i in indices])                       # (T, H, W, 3)
    return Frames(frames, indices, indices / FRAME_FOLDER_FPS, len(files), FRAME_FOLDER_FPS, "folder",
                  len(loaded))


def _capped_image(image: Image.Image) -> Image.Image:
    """A folder's image within :data:`MAX_FRAME_PIXELS`: JPEGs decode at a reduced scale (``draft``),
    anything still larger is resized with a box filter."""
    size = capped_size(*image.size)
    if size == image.size:
        return image
    image.draft("RGB", size)
    return image if image.size == size else image.resize(size, Image.BOX)


@dataclass
class _PacketTable:
    """The video packets of a file in decode order, from one demux pass (nothing decoded)."""

    pts: list[int | None] = field(default_factory=list)
    keyframe: list[bool] = field(default_factory=list)
    damaged: bool = False  # some packet is flagged corrupt or to be discarded


def _read_packet_table(container: av.container.InputContainer, stream: av.VideoStream,
                       path: Path) -> _PacketTable:
    """Demux every stream once: the video packet table, and a check that nothing is cut off."""
    table = _PacketTable()
    span = PacketSpan()
    try:
        for packet in container.demux():
            span.add(packet)
            if packet.size == 0 or packet.stream.index != stream.index:  # size 0: PyAV's flush packets
                continue
            table.pts.append(packet.pts)
            table.keyframe.append(bool(packet.is_keyframe))
            table.damaged |= bool(packet.is_corrupt or packet.is_discard)
    except av.error.FFmpegError as err:
        raise MediaError(path, f"corrupt or truncated container: demuxing failed after "
                               f"{len(table.pts)} video packets ({ffmpeg_reason(err)})") from None
    span.check(container, path)
    return table


@dataclass
class _SeekPlan:
    """Where each frame is and which keyframe to seek to for it."""

    position: dict[int, int]   # pts -> frame index (presentation order)
    gop_of: np.ndarray         # (N,) frame index -> group (GOP) number
    gop_start: list[int]       # group -> frame index of its keyframe
    gop_key_pts: list[int]     # group -> pts to seek to


def _seek_plan(table: _PacketTable, num_stream_frames: int) -> _SeekPlan | None:
    """A plan for seeking, or None when the packet table does not make seeking provably exact."""
    pts = table.pts
    if (table.damaged or len(pts) != num_stream_frames or not table.keyframe[0]
            or any(p is None for p in pts) or len(set(pts)) != len(pts)):
        return None
    position = {p: i for i, p in enumerate(sorted(pts))}
    starts = [d for d, key in enumerate(table.keyframe) if key] + [len(pts)]
    gop_of = np.empty(len(pts), dtype=np.int64)
    gop_start: list[int] = []
    gop_key_pts: list[int] = []
    next_position = 0
    for gop, (a, b) in enumerate(zip(starts, starts[1:])):
        covered = sorted(position[p] for p in pts[a:b])
        # Closed GOP: from its keyframe on, this run decodes exactly the next b - a frames, so a
        # decoder started at the keyframe produces them as it would after decoding from the start.
        if position[pts[a]] != next_position or covered != list(range(next_position, next_position + b - a)):
            return None
        gop_of[next_position:next_position + b - a] = gop
        gop_start.append(next_position)
        gop_key_pts.append(pts[a])
        next_position += b - a
    return _SeekPlan(position, gop_of, gop_start, gop_key_pts)


def _to_rgb(frame: av.VideoFrame) -> tuple[np.ndarray, float]:
    seconds = float(frame.time) if frame.time is not None else math.nan
    return cap_frame(frame).to_ndarray(format="rgb24"), seconds              # (H, W, 3)


_Decoded = tuple[dict[int, tuple[np.ndarray, float]], int]  # frame index -> (RGB, seconds); frames decoded


def _decode_seeking(container: av.container.InputContainer, stream: av.VideoStream, plan: _SeekPlan,
                    wanted: np.ndarray) -> _Decoded | None:
    """Decode the wanted frames group by group; None when anything disagrees with the plan.

    Between a keyframe and a wanted frame the decoder skips non-reference frames (``skip_frame``
    NONREF): no other frame is predicted from them, so the wanted frames decode bit-identically,
    about 30 % cheaper with x264's default B-frames. The wanted frames themselves are always
    decoded, and every frame that comes out is checked to be later than the previous one. This
    path is only a shortcut: on any surprise (including a decoder error) it returns None and the
    sequential decode gives the answer, or the error.
    """
    picked: dict[int, tuple[np.ndarray, float]] = {}
    num_decoded = 0
    groups: dict[int, set[int]] = {}
    for index in wanted.tolist():
        groups.setdefault(int(plan.gop_of[index]), set()).add(index)
    gop_starts = set(plan.gop_start)
    codec = stream.codec_context
    try:
        for gop in sorted(groups):
            remaining = groups[gop]
            try:
                container.seek(plan.gop_key_pts[gop], stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                return None  # this container cannot seek; decode from the start instead
            previous: int | None = None  # frame index of the last frame out of the decoder
            try:
                for packet in container.demux(stream):
                    position = plan.position.get(packet.pts) if packet.pts is not None else None
                    if previous is None:
                        if not packet.is_keyframe or position not in gop_starts or position > plan.gop_start[gop]:
                            return None  # landed somewhere unplanned
                        previous = position - 1
                    codec.skip_frame = "DEFAULT" if position is None or position in remaining else "NONREF"
                    for frame in packet.decode():
                        num_decoded += 1
                        out = plan.position.get(frame.pts) if frame.pts is not None else None
                        if out is None or out <= previous:
                            return None
                        previous = out
                        if out in remaining:
                            if frame.is_corrupt:  # e.g. a reference from before the keyframe
                                return None       # decoding from the start decides
                            picked[out] = _to_rgb(frame)
                            remaining.discard(out)
                    if not remaining:
                        break
            except av.error.FFmpegError:
                return None  # decoding from the start decides whether the data is really corrupt
            if remaining:
                return None  # the stream ended early; the sequential decode reports what is missing
    finally:
        codec.skip_frame = "DEFAULT"
    return picked, num_decoded


def _decode_sequential(path: Path, stream_index: int, wanted: np.ndarray, num_stream_frames: int) -> _Decoded:
    """Decode from the start (a fresh demuxer, so nothing depends on earlier seeks)."""
    wanted_set = set(wanted.tolist())
    last_needed = int(wanted.max())
    picked: dict[int, tuple[np.ndarray, float]] = {}
    index = -1
    with open_input(path) as container:
        stream = container.streams[stream_index]
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted_set:
                    if frame.is_corrupt:
                        raise MediaError(path, f"corrupt video stream: frame {index} decodes with errors")
                    picked[index] = _to_rgb(frame)
                if index >= last_needed:
                    break
        except av.error.FFmpegError as err:
            raise MediaError(path, f"corrupt video stream: decoding failed after {index + 1} frames "
                                   f"({ffmpeg_reason(err)})") from None
    missing = sorted(wanted_set - picked.keys())
    if missing:
        raise MediaError(path, f"truncated: the stream declares {num_stream_frames} frames but only "
                               f"{index + 1} decode, so frame(s) {missing} are missing")
    return picked, index + 1
