"""A long recording as a timeline (r1omni.timeline): a 60 s clip with three spoken utterances, a tiny
random model; one row per window in time order, what the summary counts, the files written."""

from __future__ import annotations

import json

import pytest
from real_media import UTTERANCES, needs_espeak, recording

from r1omni.clips import ClipLoader
from r1omni.inference import Answer
from r1omni.labels import get_label_set
from r1omni.models import SamplingConfig, init_preset
from r1omni.timeline import (
    NO_LABEL,
    TimelineOptions,
    WindowPrediction,
    predict_timeline,
    summarize_timeline,
    timeline_spans,
    write_timeline,
)

pytestmark = needs_espeak


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return recording(tmp_path_factory.mktemp("recording") / "session.mp4")


@pytest.fixture(scope="module")
def policy():
    return init_preset("qwen2.5-omni-tiny", seed=0)


def _run(policy, path, options, **loader_options):
    loader = ClipLoader(num_frames=policy.num_frames, **loader_options)
    seen = []
    rows = list(predict_timeline(policy, path, options, loader, SamplingConfig(max_new_tokens=4),
                                 get_label_set("r1omni"), progress=lambda done, total: seen.append((done, total))))
    return rows, seen


def test_fixed_windows_give_one_row_each_in_time_order(policy, long_clip, tmp_path):
    rows, seen = _run(policy, long_clip, TimelineOptions(window_seconds=4, batch_size=4))
    assert [(r.start_seconds, r.end_seconds) for r in rows] == [(4.0 * i, 4.0 * i + 4) for i in range(15)]
    assert all(r.error is None and r.reply.output is not None for r in rows)
    assert seen == [(0, 15), (4, 15), (8, 15), (12, 15), (15, 15)]
    summary = summarize_timeline(rows)
    assert summary["windows"] == 15 and summary["seconds_answered"] == pytest.approx(60.0)
    assert sum(summary["share_of_time"].values()) == pytest.approx(1.0, abs=1e-3)
    paths = write_timeline(tmp_path / "out", rows, summary)
    assert len(paths["windows"].read_text().splitlines()) == 15
    assert json.loads(paths["summary"].read_text()) == summary
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_utterance_windows_follow_the_speech_and_carry_its_transcript(policy, long_clip):
    options = TimelineOptions(window_seconds=4, split="speech")
    spans = timeline_spans(long_clip, options)
    assert len(spans) == len(UTTERANCES)
    for (start, end), (spoken_at, _) in zip(spans, UTTERANCES):
        assert spoken_at - 0.6 <= start <= spoken_at + 0.3 and end - start <= 4.0
    rows, _ = _run(policy, long_clip, options, transcribe=True)
    heard = [row.transcript.lower() for row in rows]
    for text, (_, spoken) in zip(heard, UTTERANCES):
        assert sum(word in text for word in spoken.split()) >= len(spoken.split()) // 2, (text, spoken)


def test_the_summary_splits_overlaps_and_counts_changes_and_failures():
    def said(label):
        return Answer(output=f"<answer>{label}</answer>", think=None, answer=label, label=label, format_ok=True)

    rows = [WindowPrediction(0, 0, 4, said("happy")), WindowPrediction(1, 2, 6, said(None)),
            WindowPrediction(2, 4, 8, said("happy")), WindowPrediction(3, 6, 10, error="window 6-10 s: corrupt")]
    summary = summarize_timeline(rows)
    # owned: happy 0-3, none 3-5, happy 5-8
    assert summary["share_of_time"] == {"happy": pytest.approx(6 / 8), NO_LABEL: pytest.approx(2 / 8)}
    assert [c["at_seconds"] for c in summary["changes"]] == [3.0, 5.0]
    assert summary["failed"] == 1 and summary["dominant"] == "happy"


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="split"):
        TimelineOptions(split="scenes")
    with pytest.raises(ValueError, match="overlap"):
        TimelineOptions(window_seconds=2, overlap_seconds=3)
