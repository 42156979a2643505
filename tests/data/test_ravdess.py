"""RAVDESS adapter: the filename decoding table, modality / channel options, actor folds, strays."""

from __future__ import annotations

import doctest
import shutil
from pathlib import Path

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, ravdess

# name -> (modality, vocal channel, emotion as distributed, canonical label, intensity, statement,
#          repetition, actor, gender)
DECODE_TABLE = {
    "01-01-01-01-01-01-01.mp4": ("audio-video", "speech", "neutral", "neutral", "normal",
                                 "Kids are talking by the door", 1, 1, "male"),
    "02-01-06-01-02-01-12.mp4": ("video-only", "speech", "fearful", "fear", "normal",
                                 "Dogs are sitting by the door", 1, 12, "female"),
    "03-01-08-02-01-02-23.wav": ("audio-only", "speech", "surprised", "surprise", "strong",
                                 "Kids are talking by the door", 2, 23, "male"),
    "01-02-03-02-02-02-24.mp4": ("audio-video", "song", "happy", "happy", "strong",
                                 "Dogs are sitting by the door", 2, 24, "female"),
    "03-02-02-01-01-01-05.wav": ("audio-only", "song", "calm", "calm", "normal",
                                 "Kids are talking by the door", 1, 5, "male"),
    "01-01-04-01-01-01-02.mp4": ("audio-video", "speech", "sad", "sad", "normal",
                                 "Kids are talking by the door", 1, 2, "female"),
    "01-01-05-01-01-01-03.mp4": ("audio-video", "speech", "angry", "angry", "normal",
                                 "Kids are talking by the door", 1, 3, "male"),
    "01-01-07-01-01-01-04.mp4": ("audio-video", "speech", "disgust", "disgust", "normal",
                                 "Kids are talking by the door", 1, 4, "female"),
}


@pytest.mark.parametrize("name", sorted(DECODE_TABLE))
def test_decode_filename_table(name):
    decoded = ravdess.decode_filename(name)
    modality, channel, emotion, label, intensity, statement, repetition, actor, gender = DECODE_TABLE[name]
    assert (decoded.modality, decoded.vocal_channel) == (modality, channel)
    assert (decoded.emotion, decoded.label) == (emotion, label)
    assert (decoded.intensity, decoded.statement, decoded.repetition) == (intensity, statement, repetition)
    assert (decoded.actor, decoded.gender) == (actor, gender)
    assert decoded.meta()["has_audio"] == (modality != "video-only")


@pytest.mark.parametrize("name, reason", [
    ("readme.txt", "malformed filename"),
    (".DS_Store", "malformed filename"),
    ("01-01-01-01-01-01.mp4", "malformed filename"),
    ("01-01-01-01-01-01-1.mp4", "malformed filename"),
    ("04-01-01-01-01-01-01.mp4", "unknown modality code '04'"),
    ("01-03-01-01-01-01-01.mp4", "unknown vocal channel code '03'"),
    ("01-01-00-01-01-01-01.mp4", "unknown emotion code '00'"),
    ("01-01-01-03-01-01-01.mp4", "unknown intensity code '03'"),
    ("01-01-01-01-03-01-01.mp4", "unknown statement code '03'"),
    ("01-01-01-01-01-03-01.mp4", "unknown repetition code '03'"),
    ("01-01-01-01-01-01-25.mp4", "unknown actor code '25'"),
    ("03-01-01-01-01-01-01.mp4", "suffix '.mp4' does not match modality audio-only"),
    ("01-01-01-01-01-01-01.wav", "suffix '.wav' does not match modality audio-video"),
])
def test_undecodable_names_give_a_reason(name, reason):
    assert ravdess.decode_filename(name) == reason


@pytest.mark.parametrize("actor, fold", [(1, 1), (4, 1), (5, 2), (12, 3), (13, 4), (20, 5), (21, 6), (24, 6)])
def test_fold_assignment(actor, fold):
    assert ravdess.fold_of_actor(actor) == fold


def test_docstring_examples():
    result = doctest.testmod(ravdess)
    assert result.attempted > 0 and result.failed == 0


def test_default_is_speech_audio_video_all_actors(ravdess_root):
    result = ravdess.load(ravdess_root)
    ids = sorted(s.id for s in result.samples)
    assert ids == ["01-01-02-01-01-01-01", "01-01-03-01-01-01-05", "01-01-05-02-01-01-24",
                   "01-01-06-01-02-01-01", "01-01-08-02-02-02-02"]
    assert result.read == 5 + len(fakes.RAVDESS_STRAYS)
    assert sorted(result.reasons().elements()) == sorted(reason for *_, reason in fakes.RAVDESS_STRAYS)
    sample = next(s for s in result.samples if s.id == "01-01-06-01-02-01-01")
    assert (sample.label, sample.label_raw, sample.fold, sample.split) == ("fear", "06", 1, "test")
    assert sample.video.endswith(".mp4") and sample.audio is None
    assert sample.meta == {"modality": "audio-video", "vocal_channel": "speech", "emotion": "fearful",
                           "intensity": "normal", "statement": "Dogs are sitting by the door",
                           "repetition": 1, "actor": 1, "gender": "male", "has_audio": True}
    surprised = next(s for s in result.samples if s.id == "01-01-08-02-02-02-02")
    assert (surprised.label, surprised.meta["gender"], surprised.meta["intensity"]) == ("surprise", "female", "strong")
    assert {s.id: s.fold for s in result.samples}["01-01-05-02-01-01-24"] == 6


def test_audio_only_modality(ravdess_root):
    result = ravdess.load(ravdess_root, modality="audio")
    assert sorted(s.id for s in result.samples) == ["03-01-01-01-01-02-24", "03-01-06-01-02-01-01"]
    for sample in result.samples:
        assert sample.video is None and sample.audio.endswith(".wav") and Path(sample.audio).is_file()


def test_video_only_and_song(ravdess_root):
    (silent,) = ravdess.load(ravdess_root, modality="video").samples
    assert silent.id.startswith("02-") and silent.meta["has_audio"] is False
    (song,) = ravdess.load(ravdess_root, vocal_channel="song").samples
    assert song.meta["vocal_channel"] == "song" and song.label == "happy"
    both = ravdess.load(ravdess_root, vocal_channel="both", modality="all")
    assert both.used == 9


def test_label_set_without_calm_skips_calm(ravdess_root):
    result = ravdess.load(ravdess_root, label_set="r1omni")
    assert result.reasons()["emotion 'calm' not in label set 'r1omni'"] == 1
    assert "calm" not in {s.label for s in result.samples}


def test_actor_independent_folds(ravdess_root):
    test = ravdess.load(ravdess_root, fold=1, split="test")
    train = ravdess.load(ravdess_root, fold=1, split="train")
    assert {s.meta["actor"] for s in test.samples} == {1, 2}
    assert {s.meta["actor"] for s in train.samples} == {5, 24}
    assert {(s.fold, s.split) for s in train.samples} == {(1, "train")}
    everything = ravdess.load(ravdess_root, fold=1)
    assert everything.used == test.used + train.used


def test_bad_options(ravdess_root):
    for kwargs in ({"modality": "both"}, {"vocal_channel": "sung"}, {"fold": 7}, {"split": "train"},
                   {"label_set": "nope"}):
        with pytest.raises(ValueError):
            ravdess.load(ravdess_root, **kwargs)


def test_same_file_in_two_folders_is_an_error(ravdess_root, tmp_path):
    root = tmp_path / "ravdess"
    shutil.copytree(ravdess_root / "Video" / "Actor_02", root / "a" / "Actor_02")
    shutil.copytree(ravdess_root / "Video" / "Actor_02", root / "b" / "Actor_02")
    with pytest.raises(CorpusError, match="the same file is also at"):
        ravdess.load(root)


def test_no_actor_folders_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="no Actor_XX folders"):
        ravdess.load(tmp_path)


def test_files_outside_the_selection_are_reported_with_the_option_that_selects_them(ravdess_root):
    result = ravdess.load(ravdess_root)  # defaults: modality="av", vocal_channel="speech"
    assert result.left_out["audio-only wav file(s): not in modality='av' (select them with modality='audio' "
                           "or 'all')"] == 2
    assert sum(result.left_out.values()) >= 3  # the video-only and song files too
    assert "left out" in result.summary() and "modality='audio'" in result.summary()
    everything = ravdess.load(ravdess_root, modality="all", vocal_channel="both")
    assert not everything.left_out and "left out" not in everything.summary()
