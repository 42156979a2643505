"""The extra adapters: CREMA-D (filename-coded) and MELD (CSV per split, transcripts)."""

from __future__ import annotations

import doctest

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, cremad, import_corpus, meld


def test_cremad_av(cremad_root):
    result = cremad.load(cremad_root)
    assert sorted(s.id for s in result.samples) == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1091_WSI_NEU_LO"]
    assert result.reasons() == {"known broken recording": 1, "unknown emotion code 'BOR'": 1}
    sample = next(s for s in result.samples if s.id == "1002_IEO_HAP_HI")
    assert (sample.label, sample.label_raw, sample.subtitle) == ("happy", "HAP", "It's eleven o'clock.")
    assert sample.video.endswith(".flv") and sample.audio is None
    assert sample.meta == {"actor": 1002, "sentence": "IEO", "level": "high", "gender": "female", "age": 21,
                           "race": "Caucasian", "ethnicity": "Not Hispanic"}
    assert "gender" not in next(s for s in result.samples if s.id == "1091_WSI_NEU_LO").meta


def test_cremad_audio_and_broken_option(cremad_root):
    result = cremad.load(cremad_root, modality="audio", skip_known_broken=False)
    assert result.used == 4 and all(s.audio.endswith(".wav") and s.video is None for s in result.samples)
    assert result.reasons() == {"unknown emotion code 'BOR'": 1, "malformed filename": 1}


def test_cremad_docstring_and_errors(tmp_path, cremad_root):
    assert doctest.testmod(cremad).failed == 0
    assert cremad.decode_filename("0999_DFA_ANG_XX") == "unknown actor '0999'"
    assert cremad.decode_filename("1001_ABC_ANG_XX") == "unknown sentence code 'ABC'"
    assert cremad.decode_filename("1001_DFA_ANG_ZZ") == "unknown level code 'ZZ'"
    with pytest.raises(CorpusError, match="CREMA-D VideoFlash folder not found"):
        cremad.load(tmp_path)
    with pytest.raises(ValueError, match="no official folds"):
        cremad.load(cremad_root, fold=1)


def test_meld_all_splits(meld_root):
    result = import_corpus("meld", meld_root)
    assert (result.read, result.used) == (5, 4)
    assert [(s.id, s.split, s.label, s.label_raw) for s in result.samples] == [
        ("train_dia0_utt0", "train", "sad", "sadness"), ("train_dia0_utt1", "train", "surprise", "surprise"),
        ("dev_dia0_utt0", "dev", "happy", "joy"), ("test_dia0_utt0", "test", "angry", "anger")]
    assert result.skipped[0].id == "dev_dia0_utt1" and result.reasons() == {"video file missing": 1}
    first = result.samples[0]
    assert first.subtitle == "Oh my God, he’s lost it."
    assert first.meta == {"speaker": "Phoebe", "sentiment": "negative", "season": "4", "episode": "7",
                          "start_time": "00:20:57,256", "end_time": "00:21:00,049", "sr_no": "1",
                          "dialogue_id": 0, "utterance_id": 0}


def test_meld_one_split_and_errors(meld_root, tmp_path):
    assert [s.id for s in meld.load(meld_root, split="test").samples] == ["test_dia0_utt0"]
    with pytest.raises(ValueError):
        meld.load(meld_root, split="val")
    with pytest.raises(ValueError):
        meld.load(meld_root, fold=1)
    path = fakes.write_text(tmp_path / "test_sent_emo.csv", fakes.MELD_HEADER
                            + '1,Hi.,Ross,boredom,neutral,0,0,1,1,"0:00:01,000","0:00:02,000"\n')
    with pytest.raises(CorpusError, match=f"{path}:2: emotion 'boredom' names no known emotion"):
        meld.load(tmp_path, split="test")
    fakes.write_text(path, fakes.MELD_HEADER + '1,Hi.,Ross,joy,positive,x,0,1,1,"0:00:01,000","0:00:02,000"\n')
    with pytest.raises(CorpusError, match="are not integers"):
        meld.load(tmp_path, split="test")
    with pytest.raises(CorpusError, match="dev_sent_emo.csv: annotation file not found"):
        meld.load(tmp_path, split="dev")
