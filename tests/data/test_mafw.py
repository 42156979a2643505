"""MAFW adapter on a fake tree: word labels, folds, captions, audio check, compound and error lines."""

from __future__ import annotations

from pathlib import Path

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, mafw
from r1omni.labels import MAFW


def test_all_folds_with_skips(mafw_root):
    result = mafw.load(mafw_root)
    assert result.read == 11 and result.used == 9
    assert result.reasons() == {"video file missing": 1, "multi-label clip in a single-label import": 1}
    skipped = {skip.id: skip.reason for skip in result.skipped}
    assert skipped[f"{fakes.MAFW_MISSING:05d}"] == "video file missing"
    assert f"{fakes.MAFW_COMPOUND[0]:05d}" in skipped
    for sample in result.samples:
        clip = int(sample.id)
        assert sample.label_raw == fakes.mafw_word(clip)
        assert sample.label == MAFW.labels[MAFW.raw.index(sample.label_raw)]
        assert sample.fold == (clip + 1) // 2 and sample.split == "test"
        assert "has_audio" not in sample.meta and sample.subtitle is None


def test_canonical_words(mafw_root):
    labels = {s.label_raw: s.label for s in mafw.load(mafw_root).samples}
    assert labels["happiness"] == "happy" and labels["anger"] == "angry" and labels["sadness"] == "sad"
    assert labels["contempt"] == "contemptuous"


def test_fold_and_split(mafw_root):
    train = mafw.load(mafw_root, fold=1, split="train")
    assert train.read == 8 and {s.split for s in train.samples} == {"train"}
    assert "00001" not in {s.id for s in train.samples}


def test_check_audio_records_silent_clips_and_keeps_them(mafw_root):
    result = mafw.load(mafw_root, fold=2, split="test", check_audio=True)
    has_audio = {s.id: s.meta["has_audio"] for s in result.samples}
    assert has_audio == {"00003": True, f"{fakes.MAFW_SILENT:05d}": False}


def test_captions_go_to_meta_not_subtitle(mafw_root):
    result = mafw.load(mafw_root, fold=1, split="test", captions=True)
    sample = next(s for s in result.samples if s.id == "00001")
    assert sample.meta["caption_en"] == "A man talks, clip 1." and sample.meta["caption_zh"] == "一位男士讲话。"
    assert sample.subtitle is None and sample.label == "angry"


def test_unreadable_clip_is_skipped_when_checking_audio(tmp_path):
    fakes.write_text(mafw.split_list_path(tmp_path, 1, "test"), "00001.mp4 fear\n")
    fakes.write_text(tmp_path / "clips" / "00001.mp4", "not a video")
    result = mafw.load(tmp_path, fold=1, split="test", check_audio=True)
    assert result.used == 0 and result.reasons() == {"video file cannot be opened": 1}


@pytest.mark.parametrize("line, problem", [
    ("00001.mp4 boredom", "label 'boredom' names no MAFW class"),
    ("00001.mp4 anger_boredom", "['boredom'] name no MAFW class"),
    ("00001.mp4", "expected '<id>.mp4 <label>'"),
    ("00001.mp4 fear extra", "expected '<id>.mp4 <label>'"),
    ("clip1.mp4 fear", "clip name 'clip1.mp4' is not '<digits>.mp4'"),
])
def test_bad_lines_are_errors(tmp_path, line, problem):
    path = fakes.write_text(mafw.split_list_path(tmp_path, 1, "test"), f"00002.mp4 fear\n\n{line}\n")
    with pytest.raises(CorpusError) as info:
        mafw.load(tmp_path, fold=1, split="test")
    assert str(info.value).startswith(f"{path}:3: ") and problem in str(info.value)


def test_duplicate_clip_is_an_error(tmp_path):
    fakes.write_text(mafw.split_list_path(tmp_path, 1, "test"), "00002.mp4 fear\n")
    fakes.write_text(mafw.split_list_path(tmp_path, 1, "train"), "00002.mp4 fear\n")
    with pytest.raises(CorpusError, match="clip 00002 is listed again"):
        mafw.load(tmp_path, fold=1)


def test_captioned_line_needs_four_fields(tmp_path):
    fakes.write_text(mafw.split_list_path(tmp_path, 1, "test", captions=True), "00002.mp4\tfear\tzh only\n")
    with pytest.raises(CorpusError, match="expected 4 tab-separated fields"):
        mafw.load(tmp_path, fold=1, split="test", captions=True)


def test_missing_split_list(tmp_path):
    with pytest.raises(CorpusError, match="MAFW split list file not found"):
        mafw.load(tmp_path, fold=4, split="test")
    assert Path(mafw.split_list_path(tmp_path, 4, "test")).parts[-5:] == (
        "Train & Test Set", "single", "no_caption", "set_4", "test.txt")
