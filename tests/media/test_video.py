"""sample_frames: official parity, seeking == decoding from the start, every container, frame
folders, the index rule, and every failure raising MediaError that names the file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from media_fakes import CONTAINERS, FPS, NUM_FRAMES, VFR_DURATIONS_MS, smooth_frames, tone
from PIL import Image

from r1omni.media import MediaError, sample_frames, segment_midpoints, write_audio, write_clip

# ---------------------------------------------------------------- parity with the official pipeline


def test_parity_with_official_fixture(fixture_dir):
    from safetensors.numpy import load_file

    expected = load_file(str(fixture_dir / "media_expected.safetensors"))
    for seek in (True, False):
        result = sample_frames(fixture_dir / "clip.mp4", 8, seek=seek)
        np.testing.assert_array_equal(result.indices, expected["frame_indices"])
        np.testing.assert_array_equal(result.frames, expected["frames_uint8"])
        assert result.num_stream_frames == 50
        assert result.fps == pytest.approx(24.0)
        assert result.decode_mode == ("seek" if seek else "sequential")
    frames, pts_seconds = result  # unpacks as (frames, pts_seconds)
    np.testing.assert_allclose(pts_seconds, expected["frame_indices"] / 24.0, atol=1e-3)


# ---------------------------------------------------------------- seeking vs sequential decoding


@pytest.mark.parametrize("suffix", CONTAINERS)
@pytest.mark.parametrize("num_frames", [1, 3, 8, 16, 100])
def test_seeking_matches_sequential_decode(long_gop_clips, suffix, num_frames):
    path = long_gop_clips[suffix]
    sought = sample_frames(path, num_frames)
    sequential = sample_frames(path, num_frames, seek=False)
    assert sought.decode_mode == "seek", f"{suffix} should allow seeking"
    assert sequential.decode_mode == "sequential"
    np.testing.assert_array_equal(sought.indices, sequential.indices)
    np.testing.assert_array_equal(sought.frames, sequential.frames)
    np.testing.assert_array_equal(sought.pts_seconds, sequential.pts_seconds)
    assert sought.num_stream_frames == sequential.num_stream_frames == NUM_FRAMES


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_seeking_skips_work(long_gop_clips, suffix):
    # Indices [12, 37, 62] for T=3: each is reached from a keyframe at most 12 frames before it
    # (mpeg4 in avi puts its keyframes at 0, 1, 13, 25, ...), instead of decoding 63 frames.
    sought = sample_frames(long_gop_clips[suffix], 3)
    sequential = sample_frames(long_gop_clips[suffix], 3, seek=False)
    assert sequential.num_decoded_frames == 63
    assert sought.num_decoded_frames <= 16


def test_variable_frame_rate_seeks_by_timestamp(vfr_clip):
    for num_frames in (5, 8, 13):
        sought = sample_frames(vfr_clip, num_frames)
        sequential = sample_frames(vfr_clip, num_frames, seek=False)
        assert sought.decode_mode == "seek"
        np.testing.assert_array_equal(sought.frames, sequential.frames)
        np.testing.assert_array_equal(sought.pts_seconds, sequential.pts_seconds)
    assert sought.num_stream_frames == 60
    # pts follow the irregular durations (40, 20, 80, 40, 60, 20 ms ...), not index / fps
    pts_seconds = np.concatenate([[0], np.cumsum(VFR_DURATIONS_MS)[:-1]]) / 1000
    np.testing.assert_allclose(sought.pts_seconds, pts_seconds[sought.indices])


def test_open_gop_decodes_from_start(open_gop_clip):
    result = sample_frames(open_gop_clip, 8)
    assert result.decode_mode == "sequential"
    np.testing.assert_array_equal(result.frames, sample_frames(open_gop_clip, 8, seek=False).frames)
    original = smooth_frames(NUM_FRAMES)[result.indices].astype(int)
    assert np.abs(result.frames.astype(int) - original).mean() < 8


def test_stream_without_timestamps_decodes_from_start(raw_h264):
    result = sample_frames(raw_h264, 4)
    assert result.decode_mode == "sequential"
    assert result.num_stream_frames == 30  # counted from packets: nothing stored
    np.testing.assert_array_equal(result.indices, segment_midpoints(30, 4))
    np.testing.assert_allclose(result.pts_seconds, result.indices / 25.0)
    original = smooth_frames(30)[result.indices].astype(int)
    assert np.abs(result.frames.astype(int) - original).mean() < 8


def test_fewer_stream_frames_than_wanted_repeats_indices(tmp_path):
    path = write_clip(tmp_path / "short.mp4", smooth_frames(3), FPS)
    result = sample_frames(path, 8)
    assert result.indices.tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    np.testing.assert_array_equal(result.frames[0], result.frames[1])
    np.testing.assert_array_equal(result.frames, sample_frames(path, 8, seek=False).frames)


# ---------------------------------------------------------------- containers round-trip


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_round_trip_through_write_clip(long_gop_clips, original_frames, suffix):
    result = sample_frames(long_gop_clips[suffix], 8)
    assert result.frames.shape == (8, 48, 64, 3) and result.frames.dtype == np.uint8
    assert result.indices.tolist() == segment_midpoints(NUM_FRAMES, 8).tolist()
    assert result.num_stream_frames == NUM_FRAMES
    assert result.fps == pytest.approx(FPS)
    np.testing.assert_allclose(result.pts_seconds, result.indices / FPS, atol=1e-3)
    error = np.abs(result.frames.astype(int) - original_frames[result.indices].astype(int)).mean()
    assert error < 8, f"{suffix}: mean abs pixel error {error:.1f}"
    # a wrong index would show: neighbouring frames differ by more than the codec error
    neighbour = np.abs(result.frames.astype(int) - original_frames[result.indices + 1].astype(int)).mean()
    assert neighbour > error


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_round_trip_odd_frame_rate(tmp_path, suffix):
    path = write_clip(tmp_path / f"ntsc{suffix}", smooth_frames(30), 30000 / 1001)
    result = sample_frames(path, 4)
    assert result.num_stream_frames == 30
    assert result.fps == pytest.approx(29.97, abs=0.01)
    np.testing.assert_array_equal(result.frames, sample_frames(path, 4, seek=False).frames)


# ---------------------------------------------------------------- frame folders


def _write_folder(folder: Path, frames: np.ndarray, suffix: str = ".png") -> None:
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{index:04d}{suffix}")


def test_frame_folder_png_exact(tmp_path):
    frames = smooth_frames(20)
    _write_folder(tmp_path / "frames", frames)
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    result = sample_frames(tmp_path / "frames", 8)
    assert result.decode_mode == "folder"
    assert result.num_stream_frames == 20 and result.fps == 3.0
    np.testing.assert_array_equal(result.indices, segment_midpoints(20, 8))
    np.testing.assert_array_equal(result.frames, frames[result.indices])
    np.testing.assert_allclose(result.pts_seconds, result.indices / 3.0)


def test_frame_folder_sorted_by_name(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    greys = {"b.jpg": 50, "a.jpg": 10, "c.jpg": 90}  # written out of order
    for name, grey in greys.items():
        Image.fromarray(np.full((16, 16, 3), grey, np.uint8)).save(folder / name)
    result = sample_frames(folder, 3)
    assert result.indices.tolist() == [0, 1, 2]
    np.testing.assert_allclose(result.frames.reshape(3, -1).mean(axis=1), [10, 50, 90], atol=2)


def test_frame_folder_jpeg_and_grey_images_become_rgb(tmp_path):
    folder = tmp_path / "grey"
    folder.mkdir()
    for index in range(4):
        Image.fromarray(np.full((10, 12), 40 * index, np.uint8), mode="L").save(folder / f"{index}.jpg")
    result = sample_frames(folder, 2)
    assert result.frames.shape == (2, 10, 12, 3)


# ---------------------------------------------------------------- the index rule


@pytest.mark.parametrize(("num_stream_frames", "num_frames", "expected"), [
    (50, 8, [3, 9, 15, 21, 28, 34, 40, 46]),   # the parity fixture
    (75, 3, [12, 37, 62]),                    # 12.33, 37.0, 61.67
    (10, 3, [2, 5, 8]),                       # 1.5, 4.5, 7.5: halves round up
    (3, 2, [1, 2]),                           # 0.5, 1.5: halves round up (np.round would give 0, 2)
    (5, 4, [1, 2, 3, 4]),                     # 0.5, 1.5, 2.5, 3.5
    (2, 1, [1]),                              # 0.5
    (4, 2, [1, 2]),                           # 0.75, 2.25
    (1, 4, [0, 0, 0, 0]),                     # a single frame, repeated
    (3, 8, [0, 0, 1, 1, 1, 1, 2, 2]),         # fewer frames than wanted
    (100, 1, [50]),                           # 49.5
    (8, 8, [0, 1, 2, 3, 4, 5, 6, 7]),         # 0.4375 + 0.875 i
])
def test_segment_midpoints_table(num_stream_frames, num_frames, expected):
    assert segment_midpoints(num_stream_frames, num_frames).tolist() == expected


@pytest.mark.parametrize(("num_stream_frames", "num_frames"), [(0, 8), (10, 0), (-1, 3)])
def test_segment_midpoints_rejects_non_positive_counts(num_stream_frames, num_frames):
    with pytest.raises(ValueError, match="positive"):
        segment_midpoints(num_stream_frames, num_frames)


@given(st.integers(1, 200_000), st.integers(1, 256))
def test_segment_midpoints_properties(num_stream_frames, num_frames):
    indices = segment_midpoints(num_stream_frames, num_frames)
    assert len(indices) == num_frames
    assert indices.dtype == np.int64
    assert indices.min() >= 0 and indices.max() <= num_stream_frames - 1
    assert np.all(np.diff(indices) >= 0)
    # exact rational round-half-up of (N - 1)(2i + 1) / (2T): the +1e-6 in float is the same rule
    i = np.arange(num_frames)
    exact = ((num_stream_frames - 1) * (2 * i + 1) + num_frames) // (2 * num_frames)
    np.testing.assert_array_equal(indices, exact)


# ---------------------------------------------------------------- failures


def _raises_naming(path: Path):
    return pytest.raises(MediaError, match=re.escape(path.name))


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.mp4"
    with _raises_naming(path) as info:
        sample_frames(path, 8)
    assert info.value.path == str(path) and "not found" in info.value.reason


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with _raises_naming(path) as info:
        sample_frames(path, 8)
    assert "empty" in info.value.reason


def test_random_bytes_named_mp4(tmp_path):
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with _raises_naming(path) as info:
        sample_frames(path, 8)
    assert "not a readable media file" in info.value.reason


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = write_audio(tmp_path / "speech.wav", tone(1.0))
    with _raises_naming(path) as info:
        sample_frames(path, 8)
    assert "no video stream" in info.value.reason


def test_container_with_zero_frames(zero_frame_clip):
    with _raises_naming(zero_frame_clip) as info:
        sample_frames(zero_frame_clip, 8)
    assert "zero frames" in info.value.reason


def _cut(path: Path, fraction: float, folder: Path) -> Path:
    data = path.read_bytes()
    cut = folder / f"cut_{path.name}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.mark.parametrize("suffix", CONTAINERS)
@pytest.mark.parametrize("seek", [True, False])
def test_truncated_at_half_raises(long_gop_clips, tmp_path, suffix, seek):
    cut = _cut(long_gop_clips[suffix], 0.5, tmp_path)
    with _raises_naming(cut):
        sample_frames(cut, 8, seek=seek)


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_truncated_faststart_raises(tmp_path, original_frames, suffix):
    # With the index in front, a cut file still opens: the missing tail must still be noticed.
    path = write_clip(tmp_path / f"fast{suffix}", original_frames, FPS, tone(3.0), keyframe_interval=12,
                      faststart=True)
    for fraction in (0.5, 0.9):
        cut = _cut(path, fraction, tmp_path)
        with _raises_naming(cut) as info:
            sample_frames(cut, 8)
        assert "truncated" in info.value.reason or "corrupt" in info.value.reason


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_slightly_truncated_returns_only_genuine_frames(long_gop_clips, tmp_path, suffix):
    # The last few frames are gone (within the duration tolerance): what comes back must be the
    # real frames of the intact file at the same indices, never concealment garbage.
    cut = _cut(long_gop_clips[suffix], 0.93, tmp_path)
    result = sample_frames(cut, 8)
    assert result.num_stream_frames < NUM_FRAMES
    intact = sample_frames(long_gop_clips[suffix], NUM_FRAMES)
    np.testing.assert_array_equal(result.frames, intact.frames[result.indices])


def test_directory_without_images(tmp_path):
    folder = tmp_path / "no_frames"
    folder.mkdir()
    (folder / "readme.txt").write_text("nothing to see")
    with _raises_naming(folder) as info:
        sample_frames(folder, 8)
    assert "no images" in info.value.reason


def test_unreadable_image_in_folder_names_the_image(tmp_path):
    folder = tmp_path / "frames"
    _write_folder(folder, smooth_frames(4))
    (folder / "frame_0001.png").write_bytes(b"not a png")
    with pytest.raises(MediaError, match="frame_0001.png"):
        sample_frames(folder, 4)


def test_frame_folder_with_mixed_sizes(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "0.png")
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(folder / "1.png")
    with _raises_naming(folder) as info:
        sample_frames(folder, 2)
    assert "differ in size" in info.value.reason


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files without permission")
def test_file_without_read_permission(long_gop_clips, tmp_path):
    path = tmp_path / "locked.mp4"
    path.write_bytes(long_gop_clips[".mp4"].read_bytes())
    path.chmod(0)
    try:
        with _raises_naming(path) as info:
            sample_frames(path, 8)
        assert "permission" in info.value.reason
    finally:
        path.chmod(0o644)


def test_num_frames_must_be_positive(long_gop_clips):
    with pytest.raises(ValueError, match="num_frames"):
        sample_frames(long_gop_clips[".mp4"], 0)


def test_error_message_names_file_and_cause(tmp_path):
    error = MediaError(tmp_path / "x.mp4", "no video stream")
    assert str(error) == f"{tmp_path / 'x.mp4'}: no video stream"
    assert error.reason == "no video stream"


def test_docstring_examples():
    import doctest

    import r1omni.media.video

    result = doctest.testmod(r1omni.media.video)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- reliability battery (D8, D9, D24)

def test_frames_larger_than_4k_are_scaled_down_while_decoding(tmp_path):
    """D8: two 4000 x 2400 frames would be decoded to 29 MB of RGB each and stacked per sampled frame;
    over 4K UHD's pixel count they come out scaled, aspect kept. Up to 4K nothing changes."""
    big = write_clip(tmp_path / "big.avi", np.full((2, 2400, 4000, 3), 90, np.uint8), 2)
    for seek in (True, False):
        frames = sample_frames(big, 4, seek=seek).frames
        assert frames.shape == (4, 2230, 3718, 3) and abs(int(frames.mean()) - 90) <= 2
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.full((2400, 4000, 3), 90, np.uint8)).save(folder / "0.png")
    assert sample_frames(folder, 2).frames.shape == (2, 2230, 3718, 3)
    assert sample_frames(write_clip(tmp_path / "ok.mp4", smooth_frames(4), 4), 2).frames.shape == (2, 48, 64, 3)


def _avi_with_a_dropped_frame(path: Path) -> Path:
    """A complete AVI whose encoder skipped timestamp 1: FFmpeg's AVI muxer writes an empty slot there,
    which the header counts as a frame (31) though only 30 carry a picture."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index, pts in enumerate([0, *range(2, 31)]):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 8, np.uint8), format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize("seek", [True, False])
def test_complete_avi_with_a_dropped_frame_slot_is_not_truncated(tmp_path, seek):
    """D9: the header's 31 frames counted the empty slot, the packet count did not: 'truncated'."""
    frames = sample_frames(_avi_with_a_dropped_frame(tmp_path / "gap.avi"), 8, seek=seek)
    assert frames.frames.shape == (8, 64, 64, 3)
    assert np.all(np.diff(frames.frames.reshape(8, -1).mean(axis=1)) > 0)   # later frames are brighter


def test_symlink_loop_and_fifo_are_named_for_what_they_are(tmp_path):
    """D24: a symlink loop was 'file not found' and a FIFO 'empty file (0 bytes)'."""
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    with pytest.raises(MediaError, match=r"loop.mp4: symbolic link loop"):
        sample_frames(loop, 2)
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match=r"fifo.mp4: not a regular file \(a FIFO / named pipe\)"):
        sample_frames(fifo, 2)
    dangling = tmp_path / "dangling.mp4"
    dangling.symlink_to(tmp_path / "gone.mp4")
    with pytest.raises(MediaError, match=r"dangling.mp4: file not found \(a broken symbolic link"):
        sample_frames(dangling, 2)
