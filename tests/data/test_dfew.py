"""DFEW adapter on a fake tree: folds, splits, labels, zero-padding, skips and hard errors."""

from __future__ import annotations

from pathlib import Path

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, dfew
from r1omni.labels import DFEW


def test_all_folds_reads_each_clip_once_with_its_test_fold(dfew_root):
    result = dfew.load(dfew_root)
    assert (result.read, result.used) == (10, 9)
    assert result.reasons() == {"video file missing": 1}
    assert result.skipped[0].id == f"{fakes.DFEW_MISSING:05d}"
    for sample in result.samples:
        clip = int(sample.id)
        assert sample.fold == fakes.dfew_fold(clip) and sample.split == "test"
        assert sample.label_raw == str(fakes.dfew_label(clip))
        assert sample.label == DFEW.labels[fakes.dfew_label(clip) - 1]
        assert Path(sample.video).name == f"{sample.id}.mp4" and Path(sample.video).is_file()
        assert sample.audio is None and sample.corpus == "dfew"


def test_official_order_and_zero_padding(dfew_root):
    # fold 2's CSVs are zero-padded, the others plain integers as pandas writes them
    test1 = {s.id: s for s in dfew.load(dfew_root, fold=1, split="test").samples}
    test2 = {s.id: s for s in dfew.load(dfew_root, fold=2, split="test").samples}
    assert sorted(test1) == ["00001", "00002"] and sorted(test2) == ["00003", "00004"]
    assert (test1["00001"].label, test1["00002"].label, test2["00004"].label) == ("happy", "sad", "angry")
    assert test1["00001"].meta["label_name"] == "Happy"


def test_one_fold_both_splits(dfew_root):
    result = dfew.load(dfew_root, fold=3)
    by_split = {split: sorted(s.id for s in result.samples if s.split == split) for split in ("train", "test")}
    assert by_split["test"] == ["00005", "00006"]
    assert len(by_split["train"]) == 7  # 8 listed, clip 10 missing
    assert {s.fold for s in result.samples} == {3}
    assert result.read == 10 and len(result.skipped) == 1


def test_train_split_of_one_fold(dfew_root):
    result = dfew.load(dfew_root, fold=5, split="train")
    assert result.read == 8 and result.used == 8 and all(s.split == "train" for s in result.samples)


def test_face_frames_option(dfew_root):
    result = dfew.load(dfew_root, fold=2, split="test", media="faces")
    assert result.reasons() == {"face-frame folder missing": 1}  # clip 3 has no face folder
    (sample,) = result.samples
    assert Path(sample.video).is_dir() and sample.audio.endswith("00004.mp4")


@pytest.mark.parametrize("kwargs", [{"fold": 6}, {"fold": 0}, {"split": "val"}, {"split": "train"},
                                    {"media": "crops"}])
def test_bad_selection_is_a_value_error(dfew_root, kwargs):
    with pytest.raises(ValueError):
        dfew.load(dfew_root, **kwargs)


def _tree_with_test_csv(tmp_path: Path, text: str) -> Path:
    fakes.write_text(dfew.split_csv_path(tmp_path, 1, "test"), text)
    return tmp_path


@pytest.mark.parametrize("text, problem", [
    ("video_name,label\n1,8\n", "label '8' is not an official DFEW class"),
    ("video_name,label\n1,0\n", "label '0' is not an official DFEW class"),
    ("video_name,label\n1,Happy\n", "label 'Happy'"),
    ("video_name,label\n1,1\nabc,2\n", "video_name 'abc' is not a clip number"),
    ("video_name,label\n,2\n", "empty video_name"),
    ("name,label\n1,1\n", "missing column(s) ['video_name']"),
    ("video_name,label\n1,1\n00001,1\n", "clip 00001 is listed again"),
    ("video_name,label\n1,1,7\n", "3 cells but the header has 2 columns"),
])
def test_malformed_rows_are_errors_naming_file_and_line(tmp_path, text, problem):
    root = _tree_with_test_csv(tmp_path, text)
    with pytest.raises(CorpusError) as info:
        dfew.load(root, fold=1, split="test")
    message = str(info.value)
    assert problem in message and "set_1.csv" in message
    assert info.value.line is not None


def test_missing_split_file_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match=r"set_1\.csv: annotation file not found"):
        dfew.load(tmp_path, fold=1, split="test")


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="DFEW root folder not found"):
        dfew.load(tmp_path / "nope")
