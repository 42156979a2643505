"""Generic manifest adapter: JSONL and CSV, relative paths, label mapping, filters, skips, errors."""

from __future__ import annotations

import json
from pathlib import Path

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, import_corpus, manifest
from r1omni.schema import Sample, write_samples


def _jsonl(path: Path, rows: list[dict]) -> Path:
    return fakes.write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def test_jsonl_relative_paths_labels_and_meta(clip_dir):
    path = _jsonl(clip_dir / "m.jsonl", [
        {"video": "a.mp4", "label": "Happiness", "reasoning": "She smiles.", "split": "train", "fold": 2,
         "speaker": "F1", "meta": {"take": 3}},
        {"path": "sub/c.wav", "label": "fearful", "id": "clip-c"},
        {"path": "b.mp4", "label": "anger", "subtitle": "Get out!"},
        {"video": "missing.mp4", "label": "sad"},
    ])
    result = manifest.load(path)
    assert (result.read, result.used) == (4, 3) and result.reasons() == {"video file missing": 1}
    a, c, b = result.samples
    assert (a.id, a.label, a.label_raw, a.video) == ("a", "happy", "Happiness", str(clip_dir / "a.mp4"))
    assert (a.reasoning, a.split, a.fold, a.meta) == ("She smiles.", "train", 2, {"speaker": "F1", "take": 3})
    assert (c.id, c.video, c.audio, c.label) == ("clip-c", None, str(clip_dir / "sub" / "c.wav"), "fear")
    assert (b.video, b.subtitle, b.corpus) == (str(clip_dir / "b.mp4"), "Get out!", "manifest")


def test_csv_and_tsv(clip_dir):
    csv_path = fakes.write_text(clip_dir / "m.csv", "video,label,split\na.mp4,sad,test\nb.mp4,surprised,train\n")
    result = manifest.load(csv_path, split="test")
    assert result.read == 1 and result.samples[0].label == "sad" and result.samples[0].split == "test"
    tsv_path = fakes.write_text(clip_dir / "m.tsv", "audio\tlabel\tcorpus\nsub/c.wav\tneutral\tmine\n")
    (sample,) = manifest.load(tsv_path).samples
    assert sample.audio.endswith("c.wav") and sample.corpus == "mine"


def test_round_trip_through_write_samples(clip_dir, tmp_path):
    samples = [Sample(id="x1", corpus="dfew", video=str(clip_dir / "a.mp4"), label="happy", label_raw="1",
                      split="test", fold=1, meta={"label_name": "Happy"}),
               Sample(id="x2", corpus="dfew", audio=str(clip_dir / "sub" / "c.wav"), label="sad", label_raw="2",
                      reasoning="Tears.")]
    path = tmp_path / "out" / "samples.jsonl"
    write_samples(path, samples, relative_to=path.parent)
    assert import_corpus("manifest", path).samples == samples


@pytest.mark.parametrize("rows, problem", [
    ([{"video": "a.mp4", "label": "sad"}, {"video": "b.mp4", "label": "bored"}],
     ":2: label 'bored' names no known emotion"),
    ([{"video": "a.mp4"}], ":1: empty label"),
    ([{"label": "sad"}], ":1: no media path"),
    ([{"video": "a.mp4", "path": "b.mp4", "label": "sad"}], "give 'path' or 'video'/'audio', not both"),
    ([{"video": "a.mp4", "label": "sad", "fold": "one"}], "fold 'one' is not a non-negative integer"),
    ([{"video": "a.mp4", "label": "sad"}, {"video": "a.mp4", "label": "sad"}], ":2: id 'a' is listed again"),
    ([{"video": 3, "label": "sad"}], "'video' must be a string"),
    ([["a.mp4", "sad"]], "expected a JSON object"),
])
def test_bad_rows_are_errors(clip_dir, tmp_path, rows, problem):
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(CorpusError) as info:
        manifest.load(path)
    assert str(info.value).startswith(str(path)) and problem in str(info.value)


def test_malformed_json_line(tmp_path):
    path = fakes.write_text(tmp_path / "bad.jsonl", '{"video": "a.mp4", "label": "sad"}\n{"video": \n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: not valid JSON"):
        manifest.load(path)


def test_allow_unknown_labels_and_label_set(clip_dir, tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", [{"video": str(clip_dir / "a.mp4"), "label": "bored"},
                                         {"video": str(clip_dir / "b.mp4"), "label": "calm"}])
    result = manifest.load(path, allow_unknown_labels=True, label_set="r1omni")
    assert [(s.label, s.label_raw) for s in result.samples] == [(None, "bored"), (None, "calm")]
    with pytest.raises(CorpusError, match=r":1: label 'bored' names no known emotion"):
        manifest.load(path, label_set="r1omni")
    calm = _jsonl(tmp_path / "calm.jsonl", [{"video": str(clip_dir / "b.mp4"), "label": "calm"}])
    with pytest.raises(CorpusError, match=r"label 'calm' \(calm\) is not in label set 'r1omni'"):
        manifest.load(calm, label_set="r1omni")


def test_selection_needs_the_column(clip_dir):
    path = fakes.write_text(clip_dir / "nosplit.csv", "video,label\na.mp4,sad\n")
    with pytest.raises(CorpusError, match="no split given"):
        manifest.load(path, split="train")
    with pytest.raises(CorpusError, match="no fold given"):
        manifest.load(path, fold=1)


def test_file_errors(tmp_path):
    with pytest.raises(CorpusError, match="manifest file not found"):
        manifest.load(tmp_path / "none.jsonl")
    with pytest.raises(CorpusError, match="a manifest must be one of"):
        manifest.load(tmp_path)
    path = fakes.write_text(tmp_path / "nolabel.csv", "video\na.mp4\n")
    with pytest.raises(CorpusError, match=r"nolabel\.csv:1: missing column\(s\) \['label'\]"):
        manifest.load(path)
