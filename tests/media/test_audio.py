"""load_audio: official parity, every audio format and video container, stereo -> mono, missing
audio reported (never zeros), and failures raising MediaError that names the file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from media_fakes import CONTAINERS, SAMPLE_RATE_HZ, tone
from PIL import Image

from r1omni.media import MediaError, has_audio_stream, load_audio, write_audio, write_clip

AUDIO_FORMATS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
LOSSLESS = (".wav", ".flac")


def _dominant_frequency_hz(waveform: np.ndarray, sample_rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / sample_rate_hz)[np.argmax(spectrum)])


def _rms(waveform: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))


def test_parity_with_official_fixture(fixture_dir):
    from safetensors.numpy import load_file

    expected = load_file(str(fixture_dir / "media_expected.safetensors"))["waveform_16k"]  # (1, 32768)
    audio = load_audio(fixture_dir / "clip.mp4")
    assert audio.has_audio and audio.sample_rate_hz == 16000
    assert audio.waveform.dtype == np.float32
    assert audio.waveform.shape == (32768,)  # the whole last AAC frame, as decord returns it
    np.testing.assert_allclose(audio.waveform, expected.mean(axis=0), rtol=0, atol=1e-6)
    waveform, sample_rate_hz = audio  # unpacks as (waveform, sample_rate_hz)
    assert sample_rate_hz == 16000


@pytest.mark.parametrize("suffix", AUDIO_FORMATS)
def test_audio_formats_round_trip(tmp_path, suffix):
    original = tone(1.0, 440.0)
    audio = load_audio(write_audio(tmp_path / f"tone{suffix}", original))
    assert audio.has_audio and audio.sample_rate_hz == SAMPLE_RATE_HZ
    # mp3 and opus trim their encoder delay, AAC keeps its whole last frame
    assert abs(len(audio.waveform) - len(original)) <= 1024
    assert _dominant_frequency_hz(audio.waveform, SAMPLE_RATE_HZ) == pytest.approx(440.0, abs=2.0)
    assert _rms(audio.waveform) == pytest.approx(_rms(original), rel=0.1)
    if suffix in LOSSLESS:
        np.testing.assert_allclose(audio.waveform, original, atol=0.5 / 32768 + 1e-7)


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_audio_stream_of_each_video_container(long_gop_clips, suffix):
    audio = load_audio(long_gop_clips[suffix])
    assert audio.has_audio
    assert audio.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert _dominant_frequency_hz(audio.waveform, SAMPLE_RATE_HZ) == pytest.approx(440.0, abs=2.0)
    assert has_audio_stream(long_gop_clips[suffix])


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg"])
def test_stereo_is_averaged_to_mono(tmp_path, suffix):
    left, right = tone(1.0, 440.0, 0.5), tone(1.0, 1000.0, 0.2)
    audio = load_audio(write_audio(tmp_path / f"stereo{suffix}", np.stack([left, right])))
    expected = (left + right) / 2
    if suffix in LOSSLESS:
        np.testing.assert_allclose(audio.waveform, expected, atol=0.5 / 32768 + 1e-7)
    # both tones survive at their halved amplitudes: neither channel was dropped or summed
    spectrum = np.abs(np.fft.rfft(audio.waveform[:SAMPLE_RATE_HZ])) * 2 / SAMPLE_RATE_HZ
    assert spectrum[440] == pytest.approx(0.25, rel=0.1)
    assert spectrum[1000] == pytest.approx(0.10, rel=0.1)


def test_stereo_audio_in_a_video(tmp_path):
    left, right = tone(1.0, 440.0, 0.5), -tone(1.0, 440.0, 0.5)  # opposite phase: the mean is silence
    frames = np.zeros((25, 48, 64, 3), np.uint8)
    audio = load_audio(write_clip(tmp_path / "stereo.mkv", frames, 25, np.stack([left, right])))
    assert audio.has_audio
    assert np.abs(audio.waveform).max() < 1e-4


def test_resampling_to_another_rate(tmp_path):
    path = write_audio(tmp_path / "tone.wav", tone(1.0, 440.0))
    audio = load_audio(path, sample_rate_hz=8000)
    assert audio.sample_rate_hz == 8000
    assert len(audio.waveform) == pytest.approx(8000, abs=32)
    assert _dominant_frequency_hz(audio.waveform, 8000) == pytest.approx(440.0, abs=2.0)


def test_video_without_audio_is_reported_not_zeros(silent_clip):
    audio = load_audio(silent_clip)
    assert audio.has_audio is False
    assert audio.waveform.shape == (0,) and audio.waveform.dtype == np.float32
    assert audio.sample_rate_hz == 16000
    assert not has_audio_stream(silent_clip)


def test_frame_folder_has_no_audio(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "0001.png")
    assert load_audio(folder).has_audio is False
    assert has_audio_stream(folder) is False


# ---------------------------------------------------------------- failures


def _raises_naming(path: Path):
    return pytest.raises(MediaError, match=re.escape(path.name))


def test_missing_file(tmp_path):
    path = tmp_path / "missing.wav"
    with _raises_naming(path) as info:
        load_audio(path)
    assert "not found" in info.value.reason
    with _raises_naming(path):
        has_audio_stream(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with _raises_naming(path) as info:
        load_audio(path)
    assert "empty" in info.value.reason


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with _raises_naming(path):
        load_audio(path)


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_truncated_video_at_half(long_gop_clips, tmp_path, suffix):
    data = long_gop_clips[suffix].read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with _raises_naming(cut):
        load_audio(cut)


@pytest.mark.parametrize("suffix", [".flac", ".m4a", ".mp3"])  # wav and ogg declare no length to check
def test_truncated_audio_file_at_half(tmp_path, suffix):
    path = write_audio(tmp_path / f"long{suffix}", tone(4.0))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with _raises_naming(cut):
        load_audio(cut)


def test_directory_without_images(tmp_path):
    folder = tmp_path / "nothing"
    folder.mkdir()
    with _raises_naming(folder) as info:
        load_audio(folder)
    assert "directory" in info.value.reason


def test_file_with_neither_audio_nor_video(tmp_path):
    path = tmp_path / "captions.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with _raises_naming(path) as info:
        load_audio(path)
    assert "no audio or video stream" in info.value.reason


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files without permission")
def test_file_without_read_permission(tmp_path):
    path = write_audio(tmp_path / "locked.wav", tone(0.5))
    path.chmod(0)
    try:
        with _raises_naming(path) as info:
            load_audio(path)
        assert "permission" in info.value.reason
    finally:
        path.chmod(0o644)


def test_sample_rate_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="sample_rate_hz"):
        load_audio(write_audio(tmp_path / "tone.wav", tone(0.1)), sample_rate_hz=0)
