"""probe: header facts for every container, audio files, frame folders and raw streams, without
decoding; failures raise MediaError naming the file."""

from __future__ import annotations

import re

import numpy as np
import pytest
from media_fakes import CONTAINERS, FPS, NUM_FRAMES, smooth_frames, tone
from PIL import Image

from r1omni.media import MediaError, MediaInfo, probe, sample_frames, write_audio


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_probe_video_containers(long_gop_clips, suffix):
    info = probe(long_gop_clips[suffix])
    assert info.has_video and info.has_audio
    assert info.duration_seconds == pytest.approx(3.0, abs=0.05)
    assert info.fps == pytest.approx(FPS)
    assert info.num_frames == NUM_FRAMES
    assert info.num_frames_is_estimate == (suffix in (".mkv", ".webm"))  # they store no frame count
    assert (info.width, info.height) == (64, 48)
    # Opus always runs at 48 kHz whatever it was fed; load_audio resamples
    assert info.audio_sample_rate_hz == (48000 if suffix == ".webm" else 16000)


def test_probe_fixture_clip(fixture_dir):
    info = probe(fixture_dir / "clip.mp4")
    assert info == MediaInfo(duration_seconds=pytest.approx(50 / 24, abs=1e-3), fps=24.0, num_frames=50,
                             width=64, height=48, has_video=True, has_audio=True, audio_sample_rate_hz=16000)


def test_probe_video_without_audio(silent_clip):
    info = probe(silent_clip)
    assert info.has_video and not info.has_audio and info.audio_sample_rate_hz is None


def test_probe_audio_file(tmp_path):
    info = probe(write_audio(tmp_path / "tone.flac", tone(2.0)))
    assert info.has_audio and not info.has_video
    assert info.duration_seconds == pytest.approx(2.0, abs=0.01)
    assert info.audio_sample_rate_hz == 16000
    assert info.fps is None and info.num_frames is None and info.width is None


def test_cover_art_is_not_video(mp3_with_cover):
    info = probe(mp3_with_cover)
    assert info.has_audio and not info.has_video
    with pytest.raises(MediaError, match="no video stream"):
        sample_frames(mp3_with_cover, 4)


def test_probe_frame_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(smooth_frames(9, height=20, width=30)):
        Image.fromarray(frame).save(folder / f"{index:03d}.jpg")
    info = probe(folder)
    assert info == MediaInfo(duration_seconds=3.0, fps=3.0, num_frames=9, width=30, height=20,
                             has_video=True, has_audio=False, audio_sample_rate_hz=None)


def test_probe_raw_stream_declares_no_duration(raw_h264):
    info = probe(raw_h264)
    assert info.has_video and info.duration_seconds is None and info.num_frames is None
    assert info.fps == pytest.approx(25.0)


def test_probe_reads_headers_only(long_gop_clips, tmp_path):
    # A cut mkv still probes from its headers; decoding is where the cut is found.
    data = long_gop_clips[".mkv"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    assert probe(cut).duration_seconds == pytest.approx(3.0, abs=0.05)
    with pytest.raises(MediaError, match="truncated"):
        sample_frames(cut, 8)


@pytest.mark.parametrize("content", [None, b"", b"\x00\x01garbage" * 500])
def test_probe_failures_name_the_file(tmp_path, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError, match=re.escape(path.name)):
        probe(path)


def test_probe_folder_without_images(tmp_path):
    with pytest.raises(MediaError, match="no images"):
        probe(tmp_path)


def test_probe_random_bytes(tmp_path):
    path = tmp_path / "noise.webm"
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="noise.webm"):
        probe(path)
