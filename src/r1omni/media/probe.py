"""What a media file holds, read from its headers: duration, frame rate and size, audio presence.

For the server to refuse clips over a duration limit, and for data checks, *before* any decoding.
``probe`` reads headers only: it neither decodes nor demuxes, so ``num_frames`` is the container's
stored frame count (mp4, mov, avi) or, where there is none (mkv, webm), ``round(duration x fps)``
with ``num_frames_is_estimate`` set; ``sample_frames`` counts packets instead (see
``r1omni.media.video``). A truncated file may still probe fine: ``sample_frames`` / ``load_audio``
are where truncation is detected.

A frame folder probes as a video at 3 fps without sound (its first image gives the size).

Errors: :class:`~r1omni.media.MediaError` naming the file for a missing, empty, unreadable or
non-media file, a file with neither audio nor video, and a folder without images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from r1omni.media._container import audio_stream, open_input, video_stream
from r1omni.media.errors import MediaError
from r1omni.media.video import FRAME_FOLDER_FPS, FRAME_SUFFIXES

__all__ = ["MediaInfo", "probe"]


@dataclass(frozen=True)
class MediaInfo:
    """Header facts about a media file. Video fields are None without video, audio ones without audio."""

    duration_seconds: float | None     # the container's duration; None when it declares none (raw streams)
    fps: float | None                  # average frame rate of the video stream
    num_frames: int | None             # stored frame count, or an estimate (see num_frames_is_estimate)
    width: int | None
    height: int | None
    has_video: bool
    has_audio: bool
    audio_sample_rate_hz: int | None   # the stream's own rate, before any resampling
    num_frames_is_estimate: bool = False  # True when num_frames is round(duration x fps)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read ``path``'s headers (or list a frame folder) without decoding anything."""
    path = Path(path)
    if path.is_dir():
        return _probe_folder(path)
    with open_input(path) as container:
        video = video_stream(container)
        audio = audio_stream(container)
        if video is None and audio is None:
            raise MediaError(path, "no audio or video stream")
        duration_seconds = container.duration / av.time_base if container.duration else None
        if duration_seconds is None:
            durations = [float(s.duration * s.time_base) for s in (video, audio)
                         if s is not None and s.duration and s.time_base]
            duration_seconds = max(durations) if durations else None
        fps = num_frames = width = height = None
        estimate = False
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else None
            width, height = video.codec_context.width, video.codec_context.height
            num_frames = video.frames or None
            if num_frames is None and fps and duration_seconds is not None:
                video_seconds = (float(video.duration * video.time_base)
                                 if video.duration and video.time_base else duration_seconds)
                num_frames, estimate = round(video_seconds * fps), True
        return MediaInfo(duration_seconds=duration_seconds, fps=fps, num_frames=num_frames, width=width,
                         height=height, has_video=video is not None, has_audio=audio is not None,
                         audio_sample_rate_hz=audio.sample_rate if audio is not None else None,
                         num_frames_is_estimate=estimate)


def _probe_folder(folder: Path) -> MediaInfo:
    try:
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES),
                       key=lambda p: p.name)
    except PermissionError:
        raise MediaError(folder, "permission denied (folder is not readable)") from None
    if not files:
        raise MediaError(folder, f"frame folder holds no images ({', '.join(FRAME_SUFFIXES)})")
    try:
        with Image.open(files[0]) as image:  # reads the header only
            width, height = image.size
    except OSError as err:
        raise MediaError(files[0], f"unreadable image ({err})") from None
    return MediaInfo(duration_seconds=len(files) / FRAME_FOLDER_FPS, fps=FRAME_FOLDER_FPS,
                     num_frames=len(files), width=width, height=height, has_video=True,
                     has_audio=False, audio_sample_rate_hz=None)
