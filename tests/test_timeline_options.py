"""Timeline options and outputs that need no recording: finite window settings, the window cap, one
output folder per recording (the reliability battery's D5, D7, D17)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from r1omni.media import write_audio
from r1omni.timeline import TimelineOptions, timeline_spans


@pytest.mark.parametrize(("window", "overlap"), [(math.inf, 0.0), (math.nan, 0.0), (4.0, math.nan), (-1.0, 0.0)])
def test_windows_must_be_finite_numbers_of_seconds(window, overlap):
    """D17: segment_seconds=inf was accepted and streamed "window_seconds": Infinity (not JSON)."""
    with pytest.raises(ValueError, match="window_seconds must be a finite number|overlap_seconds must be in"):
        TimelineOptions(window_seconds=window, overlap_seconds=overlap)


def test_overlap_and_window_length_are_bounded():
    """D7: 4 s windows overlapping by 3.999 s cut a 10-minute file into 596,002 windows; a window of 1e-320 s
    never moved the next window's start (an endless loop)."""
    with pytest.raises(ValueError, match=r"overlap_seconds must be in \[0, 0.9 x window_seconds\] = \[0, 3.6\], "
                                         r"got 3.999"):
        TimelineOptions(window_seconds=4, overlap_seconds=3.999)
    with pytest.raises(ValueError, match=r"window_seconds must be a finite number of seconds >= 0.1, got 1e-320"):
        TimelineOptions(window_seconds=1e-320)
    assert TimelineOptions(window_seconds=4, overlap_seconds=3.6).overlap_seconds == 3.6


def test_a_recording_over_the_window_cap_is_refused_before_its_spans_are_listed(tmp_path):
    """D7: nothing capped the windows of one recording (the server's work per request)."""
    from r1omni.timeline import TooManyWindows, fixed_window_count

    wav = write_audio(tmp_path / "ten_seconds.wav", np.zeros(10 * 16000, np.float32))
    capped = TimelineOptions(window_seconds=1, overlap_seconds=0.9, max_windows=50)
    with pytest.raises(TooManyWindows, match=r"would be cut into 9\d windows; the limit is 50"):
        timeline_spans(wav, capped)
    assert len(timeline_spans(wav, TimelineOptions(window_seconds=4, max_windows=3))) == 3
    from r1omni.media.windows import fixed_spans

    assert fixed_window_count(600, TimelineOptions(window_seconds=4, overlap_seconds=2)) == len(fixed_spans(600, 4, 2))


def test_recordings_that_share_a_stem_get_a_folder_each():
    """D5: a.mkv, a.webm and a.mov all wrote OUT/a/, leaving the last one's timeline only."""
    from r1omni.timeline import output_names

    names = output_names(["in/a.mkv", "in/a.webm", "in/a.mov", "x/b.mp4", "y/b.mp4", "b.mp4-2", "solo.mp4"])
    assert names == ["a.mkv", "a.webm", "a.mov", "b.mp4", "b.mp4-3", "b.mp4-2", "solo"]
    assert len(set(output_names(["same.mp4", "same.mp4", "same.mp4"]))) == 3
