"""EMER adapter: v1 and v2 (OV-MERD) annotation files, open-set labels, skips and errors."""

from __future__ import annotations

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, emer


def test_v1(emer_v1_root):
    result = emer.load(emer_v1_root)
    assert (result.read, result.used) == (4, 2)
    assert result.reasons() == {"video file missing": 1, "emotion 'worried' not in label set 'r1omni'": 1}
    sample = next(s for s in result.samples if s.id == "sample_00000007")
    assert (sample.label, sample.label_raw) == ("happy", "happy")
    assert sample.subtitle == "Then let's meet, okay? Well, goodbye."
    assert sample.reasoning == "She smiles and nods; her voice is bright."
    assert sample.video.endswith("video/sample_00000007.mp4") and sample.fold is None and sample.split is None


def test_v1_any_label(emer_v1_root):
    result = emer.load(emer_v1_root, label_set=None)
    assert {s.id: s.label for s in result.samples}["sample_00000033"] == "worried"


def test_v2_with_openset(emer_v2_root):
    result = emer.load(emer_v2_root)
    assert (result.read, result.used) == (4, 2)
    assert result.reasons() == {"no open-set word maps to a label in 'r1omni'": 1,
                                "no open-set labels for this clip": 1}
    sample = next(s for s in result.samples if s.id == "sample_00000000")
    # 'pleasurable' names nothing, 'relaxed' is calm (not in R1-Omni's vocabulary), 'joyful' is happy
    assert (sample.label, sample.label_raw) == ("happy", "joyful")
    assert sample.meta["openset"] == ["pleasurable", "relaxed", "joyful", "happy"]
    assert sample.reasoning.startswith("In the video, the doctor") and 'reads: "How would I know!"' in sample.reasoning
    assert sample.meta["reasoning_zh"].startswith("在视频中") and sample.subtitle is None


def test_v2_any_label_takes_the_first_known_word(emer_v2_root):
    labels = {s.id: (s.label_raw, s.label) for s in emer.load(emer_v2_root, label_set=None).samples}
    assert labels["sample_00000000"] == ("relaxed", "calm")
    assert labels["sample_00000033"] == ("worry", "worried")


def test_v2_without_openset_is_unlabelled(tmp_path):
    fakes.write_text(tmp_path / "final-EMER-reason.csv", fakes.EMER_V2_CSV)
    fakes.make_clip(tmp_path / "clips" / "sample_00000039.avi")
    result = emer.load(tmp_path, video_dir="clips", video_suffix=".avi")
    assert result.used == 1 and result.samples[0].label is None and "openset" not in result.samples[0].meta
    assert result.reasons() == {"video file missing": 3}


def test_audio_folder_option(emer_v1_root):
    result = emer.load(emer_v1_root, audio_dir="audio")
    assert result.used == 0 and result.reasons()["audio file missing"] == 2


@pytest.mark.parametrize("cell, problem", [
    ("\"__import__('os').system('true')\"", "is not a Python list literal"),
    ("\"['happy', 1]\"", "is not a list of strings"),
    ("happy", "is not a Python list literal"),
])
def test_bad_openset_cells_are_errors(tmp_path, cell, problem):
    fakes.write_text(tmp_path / "final-EMER-reason.csv", fakes.EMER_V2_CSV)
    path = fakes.write_text(tmp_path / "check-openset.csv",
                            f"name,openset\nsample_00000000,['sad']\nsample_00000033,{cell}\n")
    with pytest.raises(CorpusError) as info:
        emer.load(tmp_path)
    assert str(info.value).startswith(f"{path}:3: ") and problem in str(info.value)


def test_unknown_v1_emotion_is_an_error(tmp_path):
    path = fakes.write_text(tmp_path / "gt-eng.csv", "names,emotions,subtitles,reasons\nsample_1,blorp,hi,why\n")
    with pytest.raises(CorpusError, match=f"{path}:2: emotion 'blorp' names no known emotion"):
        emer.load(tmp_path)


def test_layout_errors(tmp_path, emer_v1_root):
    with pytest.raises(CorpusError, match="found neither"):
        emer.load(tmp_path)
    fakes.write_text(tmp_path / "gt-eng.csv", fakes.EMER_V1_CSV)
    fakes.write_text(tmp_path / "dataset-v2" / "final-EMER-reason.csv", fakes.EMER_V2_CSV)
    with pytest.raises(CorpusError, match="found both"):
        emer.load(tmp_path)
    assert emer.load(tmp_path, version="v2").read == 4
    fakes.write_text(tmp_path / "gt-eng.csv", "names,emotions,reasons\nsample_1,happy,why\n")
    with pytest.raises(CorpusError, match=r"missing column\(s\) \['subtitles'\]"):
        emer.load(tmp_path, version="v1")
    with pytest.raises(ValueError, match="no official folds"):
        emer.load(emer_v1_root, fold=1)
    with pytest.raises(ValueError, match="version must be one of"):
        emer.load(emer_v1_root, version="v3")


def test_duplicate_name_is_an_error(tmp_path):
    fakes.write_text(tmp_path / "gt-eng.csv", "names,emotions,subtitles,reasons\ns1,happy,a,b\ns1,sad,c,d\n")
    with pytest.raises(CorpusError, match=":3: name 's1' is listed twice"):
        emer.load(tmp_path)
