"""The dispatch (`import_corpus`, `CORPORA`) and the result type every adapter returns."""

from __future__ import annotations

import inspect

import pytest

from r1omni.data import CORPORA, CorpusError, ImportResult, Skip, import_corpus, options_of
from r1omni.data.common import read_csv_rows
from r1omni.schema import Sample


def test_corpora_names():
    assert set(CORPORA) == {"dfew", "mafw", "ravdess", "emer", "manifest", "llava", "cremad", "meld"}


def test_every_adapter_has_the_same_entry_point():
    for name, loader in CORPORA.items():
        params = list(inspect.signature(loader).parameters)
        assert params[:3] == ["root", "fold", "split"], name
        assert loader.__module__.endswith(name)
        assert len(inspect.getmodule(loader).__doc__) > 500, f"{name}: the module docstring documents the layout"


def test_dispatch_passes_selection_and_options(dfew_root, ravdess_root):
    assert import_corpus("dfew", dfew_root, fold=1, split="test").used == 2
    assert import_corpus("DFEW", dfew_root, fold=1, split="test", media="faces").used == 2
    assert import_corpus("ravdess", ravdess_root, modality="audio").used == 2


def test_unknown_corpus_and_option(dfew_root):
    with pytest.raises(ValueError, match="unknown corpus 'affwild'; known: dfew, mafw"):
        import_corpus("affwild", dfew_root)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['check_audio'\]; options \(with defaults\): "
                                         r"media='original'"):
        import_corpus("dfew", dfew_root, check_audio=True)
    assert options_of("mafw") == {"captions": False, "check_audio": False}


def test_result_counts_and_summary():
    samples = [Sample(id="1", corpus="c", video="1.mp4"), Sample(id="2", corpus="c", video="2.mp4")]
    skipped = [Skip("3", "3.mp4", "video file missing"), Skip("4", "4.mp4", "video file missing"),
               Skip("x.txt", "x.txt", "malformed filename")]
    result = ImportResult("c", samples, 5, skipped)
    assert (result.read, result.used) == (5, 2)
    assert result.reasons() == {"video file missing": 2, "malformed filename": 1}
    assert result.summary().splitlines() == ["c: read 5, used 2, skipped 3", "  2 x video file missing",
                                             "  1 x malformed filename"]


def test_result_refuses_uncounted_records():
    with pytest.raises(ValueError, match="every record read must be used or skipped"):
        ImportResult("c", [], 1, [])


def test_corpus_error_names_file_and_line():
    error = CorpusError("ann/set_1.csv", 7, "label '9' is unknown")
    assert str(error) == "ann/set_1.csv:7: label '9' is unknown" and isinstance(error, ValueError)
    assert (error.path, error.line, error.problem) == ("ann/set_1.csv", 7, "label '9' is unknown")
    assert str(CorpusError("root", None, "folder not found")) == "root: folder not found"


def test_text_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"video": "a.mp4", "label": "sad"}\n{"video": "\xff.mp4", "label": "sad"}\n')
    with pytest.raises(CorpusError, match=r"m\.jsonl:2: not UTF-8 text"):
        import_corpus("manifest", path)
    csv_path = tmp_path / "set_1.csv"
    csv_path.write_bytes(b"video_name,label\n1,1\n2,\xe9\n")
    with pytest.raises(CorpusError, match=r"set_1\.csv:3: not UTF-8 text"):
        list(read_csv_rows(csv_path, ("video_name", "label")))
