"""Session-scoped generated media for the media tests: long-GOP clips in every container, a
variable-frame-rate clip, a raw H.264 stream without timestamps, an open-GOP clip, a clip whose video
stream holds no frames, an mp3 with cover art. Everything is small (64x48), so the suite runs in seconds."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media_fakes import (
    CONTAINERS,
    FPS,
    KEYFRAME_INTERVAL,
    NUM_FRAMES,
    SAMPLE_RATE_HZ,
    VFR_DURATIONS_MS,
    encode_x264,
    smooth_frames,
    tone,
)

from r1omni.media import write_clip


@pytest.fixture(scope="session")
def original_frames() -> np.ndarray:
    return smooth_frames(NUM_FRAMES)


@pytest.fixture(scope="session")
def long_gop_clips(tmp_path_factory, original_frames) -> dict[str, Path]:
    """suffix -> 3 s 25 fps clip with a 440 Hz tone, keyframes every 12 frames (mp4/mov/mkv with
    B-frames)."""
    folder = tmp_path_factory.mktemp("long_gop")
    return {suffix: write_clip(folder / f"clip{suffix}", original_frames, FPS, tone(3.0),
                               keyframe_interval=KEYFRAME_INTERVAL)
            for suffix in CONTAINERS}


@pytest.fixture(scope="session")
def vfr_clip(tmp_path_factory) -> Path:
    """An mkv whose frame durations vary (20 to 80 ms): timestamps are the only way to find frames."""
    pts_ms = np.concatenate([[0], np.cumsum(VFR_DURATIONS_MS)[:-1]])
    return encode_x264(tmp_path_factory.mktemp("vfr") / "vfr.mkv", smooth_frames(60),
                       "keyint=10:scenecut=0", pts_ms)


@pytest.fixture(scope="session")
def raw_h264(tmp_path_factory) -> Path:
    """An Annex-B H.264 elementary stream: no container, no timestamps, no frame count."""
    return encode_x264(tmp_path_factory.mktemp("raw") / "clip.h264", smooth_frames(30), "keyint=8:scenecut=0")


@pytest.fixture(scope="session")
def open_gop_clip(tmp_path_factory) -> Path:
    """An mp4 with open GOPs: B-frames after a keyframe (in decode order) are shown before it and
    reference the previous GOP, so seeking to that keyframe would not reproduce them."""
    return encode_x264(tmp_path_factory.mktemp("open_gop") / "open.mp4", smooth_frames(NUM_FRAMES),
                       "keyint=12:scenecut=0:open-gop=1:bframes=3")


@pytest.fixture(scope="session")
def zero_frame_clip(tmp_path_factory) -> Path:
    """An mkv that declares a video stream but holds only audio packets."""
    path = tmp_path_factory.mktemp("zero") / "zero.mkv"
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=SAMPLE_RATE_HZ)
        audio.layout = "mono"
        container.start_encoding()
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE_HZ, index * 1024
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def mp3_with_cover(tmp_path_factory) -> Path:
    """An mp3 with cover art: FFmpeg lists the picture as a video stream (attached_pic)."""
    import io

    from PIL import Image

    path = tmp_path_factory.mktemp("cover") / "song.mp3"
    jpeg = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(jpeg, format="JPEG")
    with av.open(str(path), mode="w") as container:
        audio = container.add_stream("libmp3lame", rate=SAMPLE_RATE_HZ)
        audio.layout = "mono"
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        container.start_encoding()
        packet = av.Packet(jpeg.getvalue())
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        container.mux(packet)
        waveform = tone(1.0)
        for start in range(0, len(waveform), 1152):
            frame = av.AudioFrame.from_ndarray(waveform[None, start:start + 1152], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE_HZ, start
            for out in audio.encode(frame):
                container.mux(out)
        for out in audio.encode(None):
            container.mux(out)
    return path
