"""write_clip / write_audio: argument checks, keyframe spacing, faststart layout, channel layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest
from media_fakes import KEYFRAME_INTERVAL, smooth_frames, tone

from r1omni.media import write_audio, write_clip

FRAMES = smooth_frames(4)


@pytest.mark.parametrize(("frames", "suffix", "message"), [
    (FRAMES, ".gif", "unsupported container"),
    (FRAMES.astype(np.float32), ".mp4", "uint8"),
    (FRAMES[..., :2], ".mp4", "uint8"),
    (FRAMES[:, :47], ".mp4", "even"),
    (FRAMES[:0], ".mp4", "at least one frame"),
])
def test_write_clip_rejects_bad_arguments(tmp_path, frames, suffix, message):
    with pytest.raises(ValueError, match=message):
        write_clip(tmp_path / f"clip{suffix}", frames, 25)


def test_write_clip_rejects_bad_waveform_and_options(tmp_path):
    with pytest.raises(ValueError, match="1 or 2 channels"):
        write_clip(tmp_path / "clip.mp4", FRAMES, 25, np.zeros((3, 1600), np.float32))
    with pytest.raises(ValueError, match="faststart"):
        write_clip(tmp_path / "clip.mkv", FRAMES, 25, faststart=True)


def test_write_audio_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unsupported audio format"):
        write_audio(tmp_path / "tone.aiff", tone(0.1))


def _video_packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.size]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_keyframe_interval_is_exact_for_x264(long_gop_clips, suffix):
    packets = sorted(_video_packets(long_gop_clips[suffix]))
    keyframes = [index for index, (_, key) in enumerate(packets) if key]
    assert keyframes == list(range(0, 75, KEYFRAME_INTERVAL))  # 7 GOPs, no scene-cut extras


@pytest.mark.parametrize("suffix", [".webm", ".avi"])
def test_keyframe_interval_bounds_gops(long_gop_clips, suffix):
    packets = sorted(_video_packets(long_gop_clips[suffix]))
    keyframes = [index for index, (_, key) in enumerate(packets) if key]
    assert len(keyframes) >= 6
    assert max(np.diff(keyframes + [75])) <= KEYFRAME_INTERVAL


def test_faststart_puts_the_index_first(tmp_path):
    normal = write_clip(tmp_path / "normal.mp4", FRAMES, 25).read_bytes()
    fast = write_clip(tmp_path / "fast.mp4", FRAMES, 25, faststart=True).read_bytes()
    assert normal.index(b"moov") > normal.index(b"mdat")
    assert fast.index(b"moov") < fast.index(b"mdat")


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a", ".ogg"])
def test_write_audio_keeps_channels(tmp_path, suffix):
    path = write_audio(tmp_path / f"stereo{suffix}", np.stack([tone(0.2), tone(0.2, 880.0)]))
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.channels == 2


def test_write_clip_without_audio_has_no_audio_stream(tmp_path):
    path = write_clip(tmp_path / "mute.webm", FRAMES, 25)
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1 and not container.streams.audio



_WRITE_IN_A_PROCESS = """
import sys, numpy as np
from r1omni.media import write_clip
rng = np.random.default_rng(3)
frames = rng.integers(0, 256, (24, 96, 128, 3), dtype=np.uint8)
frames[:, 20:60, 30:90] = np.linspace(0, 255, 24, dtype=np.uint8)[:, None, None, None]
write_clip(sys.argv[1], frames, 24, rng.standard_normal(32000).astype(np.float32) * 0.1)
"""


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_the_same_frames_give_the_same_file_on_one_core_or_all(tmp_path, suffix):
    """Byte-identical files from a process pinned to one core and one that sees all cores, with other
    thread variables: the benchmark's clips must not depend on the machine's parallelism (with FFmpeg's
    frame threads the H.264 bitstream changes with the thread count)."""
    files = []
    for prefix, threads in ((["taskset", "-c", "0"], "1"), ([], "4")):
        path = tmp_path / f"clip{threads}{suffix}"
        subprocess.run([*prefix, sys.executable, "-c", _WRITE_IN_A_PROCESS, str(path)], check=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": threads})
        files.append(path.read_bytes())
    assert files[0] == files[1]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi", ".mov"])
def test_no_file_names_the_ffmpeg_release_that_wrote_it(tmp_path, suffix):
    """A version string in the file ("Lavc62.28.102" in the AAC stream's first packet) changed one byte of every
    benchmark clip between FFmpeg 8.1.2 and 8.1.3 (PyAV 18.1.0 and 18.1.1) whose frames and samples it left
    as they were: the same media must give the same bytes under any release of the same encoders."""
    clip = write_clip(tmp_path / f"clip{suffix}", FRAMES, 8, tone(0.5)).read_bytes()
    assert b"Lavc" not in clip and b"Lavf6" not in clip
    for audio_suffix in (".m4a", ".flac", ".ogg", ".wav"):
        sound = write_audio(tmp_path / f"sound{audio_suffix}", tone(0.5)).read_bytes()
        assert b"Lavc" not in sound and b"Lavf6" not in sound, audio_suffix
