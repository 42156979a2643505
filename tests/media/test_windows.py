"""read_windows: one pass over a long file, each window's frames at its segment midpoints and its audio
equal to the same slice of the whole decoded soundtrack; spans, overlaps, missing streams and errors."""

from __future__ import annotations

import numpy as np
import pytest

from r1omni.media import MediaError, load_audio, write_audio, write_clip
from r1omni.media.windows import audio_blocks, fixed_spans, read_windows

FPS, SECONDS = 8, 20


@pytest.fixture(scope="module")
def counting_clip(tmp_path_factory):
    """20 s at 8 fps whose frame k is a flat grey of level 10 * (k // 8): the second it belongs to, readable
    through H.264's rounding; a tone that is on in even seconds only."""
    frames = np.stack([np.full((32, 48, 3), 10 * (k // FPS), np.uint8) for k in range(SECONDS * FPS)])
    t = np.arange(SECONDS * 16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t) * (np.floor(t) % 2 == 0)).astype(np.float32)
    return write_clip(tmp_path_factory.mktemp("long") / "count.mkv", frames, FPS, tone)


def _second_of(frame: np.ndarray) -> int:
    return int(round(frame.mean() / 10))


def test_windows_tile_the_file_with_frames_and_audio_where_they_belong(counting_clip):
    spans = fixed_spans(SECONDS, 4)
    windows = list(read_windows(counting_clip, spans, num_frames=4))
    assert [(w.start_seconds, w.end_seconds) for w in windows] == spans
    assert [w.index for w in windows] == [0, 1, 2, 3, 4]
    whole = load_audio(counting_clip).waveform
    for window in windows:
        assert window.frames.shape == (4, 32, 48, 3)
        # targets at start + 0.5, 1.5, 2.5, 3.5 s: one frame from each second of the window
        assert [_second_of(f) for f in window.frames] == [int(window.start_seconds) + i for i in range(4)]
        first, last = int(window.start_seconds * 16000), int(window.end_seconds * 16000)
        assert np.array_equal(window.waveform, whole[first:last])


def test_overlapping_and_gapped_spans(counting_clip):
    spans = [(1.0, 5.0), (3.0, 7.0), (12.0, 14.0)]
    windows = list(read_windows(counting_clip, spans, num_frames=2))
    assert [[_second_of(f) for f in w.frames] for w in windows] == [[2, 4], [4, 6], [12, 13]]
    assert [len(w.waveform) for w in windows] == [64000, 64000, 32000]


def test_streams_can_be_left_out_and_missing_ones_are_none(counting_clip, tmp_path):
    [window] = read_windows(counting_clip, [(0.0, 2.0)], num_frames=2, with_audio=False)
    assert window.waveform is None and window.frames is not None
    wav = write_audio(tmp_path / "talk.wav", np.full(16000 * 3, 0.1, np.float32))
    windows = list(read_windows(wav, [(0.0, 2.0), (2.0, 3.0)], num_frames=2))
    assert [w.frames for w in windows] == [None, None] and [len(w.waveform) for w in windows] == [32000, 16000]
    silent = write_clip(tmp_path / "silent.mp4", np.zeros((16, 32, 32, 3), np.uint8), 8)
    [window] = read_windows(silent, [(0.0, 2.0)], num_frames=2)
    assert window.waveform is None and window.frames.shape == (2, 32, 32, 3)


def test_a_span_past_the_end_gets_the_last_frames(counting_clip):
    [window] = read_windows(counting_clip, [(19.0, 25.0)], num_frames=3)
    assert [_second_of(f) for f in window.frames] == [19, 19, 19]


def test_audio_blocks_rejoin_to_the_whole_soundtrack(counting_clip):
    blocks = list(audio_blocks(counting_clip, block_seconds=6))
    assert [start for start, _ in blocks] == [0.0, 6.0, 12.0, 18.0]
    assert np.array_equal(np.concatenate([b for _, b in blocks]), load_audio(counting_clip).waveform)


def test_bad_spans_and_files_are_refused(counting_clip, tmp_path):
    with pytest.raises(ValueError, match="sorted"):
        list(read_windows(counting_clip, [(4.0, 6.0), (1.0, 2.0)], num_frames=2))
    with pytest.raises(ValueError, match="end > start"):
        list(read_windows(counting_clip, [(4.0, 4.0)], num_frames=2))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError, match="broken.mp4"):
        list(read_windows(broken, [(0.0, 1.0)], num_frames=2))
    with pytest.raises(ValueError, match="overlap"):
        fixed_spans(10, 4, overlap_seconds=4)


def test_a_file_cut_short_is_refused_as_whole_file_decoding_refuses_it(counting_clip, tmp_path):
    """D10: windows past the cut would answer with no audio and frames from before it; the pass ends with
    the truncation error instead, on every path that reads windows or audio blocks."""
    data = counting_clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut.mkv: truncated: the container declares 20.\d+ s"):
        list(read_windows(cut, fixed_spans(SECONDS, 4), num_frames=2))
    with pytest.raises(MediaError, match=r"cut.mkv: truncated"):
        list(audio_blocks(cut, block_seconds=6))
    assert len(list(read_windows(counting_clip, fixed_spans(SECONDS, 4), num_frames=2))) == 5   # whole: fine


def test_frames_larger_than_4k_are_scaled_down_as_they_are_decoded(tmp_path):
    """D8: a window's candidate frames are held until it closes; over 4K they are held scaled down."""
    big = write_clip(tmp_path / "big.avi", np.full((2, 2400, 4000, 3), 90, np.uint8), 2)
    [window] = read_windows(big, [(0.0, 1.0)], num_frames=2)
    assert window.frames.shape == (2, 2230, 3718, 3)     # at most 3840 x 2160 pixels, aspect kept
