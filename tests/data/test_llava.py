"""LLaVA conversation JSON: import of the official shape, export, and the round trip."""

from __future__ import annotations

import json
from pathlib import Path

import corpus_fakes as fakes
import pytest

from r1omni.data import CorpusError, import_corpus, llava
from r1omni.schema import Sample
from r1omni.template import PROMPTS


def _official_entries() -> list[dict]:
    return [
        {"video": "MER24/sample_00000967.mp4",
         "conversations": [{"from": "human", "value": f"<video>\n<audio>\n{PROMPTS['train']}"},
                           {"from": "gpt", "value": "<think>Her brows are knit and her voice trembles.</think>\n"
                                                    "<answer>anxious</answer>"}]},
        {"video": "MAFW/00025.mp4",
         "conversations": [{"from": "human", "value": f"<video>\n{PROMPTS['label']}"},
                           {"from": "gpt", "value": "sad"}]},
        {"video": "MAFW/00026.mp4",
         "conversations": [{"from": "human", "value": "<video>\nhi"}, {"from": "gpt", "value": "happy"},
                           {"from": "human", "value": "why?"}, {"from": "gpt", "value": "smile"}]},
        {"image": "coco/1.jpg",
         "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "happy"}]},
        {"video": "MAFW/missing.mp4",
         "conversations": [{"from": "human", "value": "<video>\nq"}, {"from": "gpt", "value": "fear"}]},
    ]


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[Path, Path]:
    """(conversation JSON, data folder) shaped like R1-Omni's training files."""
    data_folder = tmp_path_factory.mktemp("data")
    for name in ("MER24/sample_00000967.mp4", "MAFW/00025.mp4", "MAFW/00026.mp4"):
        fakes.make_clip(data_folder / name)
    path = fakes.write_text(tmp_path_factory.mktemp("json") / "cold_start.json", json.dumps(_official_entries()))
    return path, data_folder


def test_import_official_shape(official):
    path, data_folder = official
    result = llava.load(path, data_folder=data_folder)
    assert (result.read, result.used) == (5, 2)
    assert result.reasons() == {"multi-turn conversation": 1, "image entry (not a clip)": 1, "video file missing": 1}
    emer, label_only = result.samples
    assert emer.id == "MER24/sample_00000967" and emer.video == str(data_folder / "MER24" / "sample_00000967.mp4")
    assert (emer.label, emer.label_raw) == ("anxious", "anxious")
    assert emer.reasoning == "Her brows are knit and her voice trembles."
    assert emer.meta["question"] == PROMPTS["train"] and emer.subtitle is None
    assert (label_only.label, label_only.reasoning, label_only.meta["question"]) == ("sad", None, PROMPTS["label"])


def test_default_data_folder_is_the_files_folder(official):
    path, _ = official
    result = llava.load(path)
    assert result.used == 0 and result.reasons()["video file missing"] == 3


def _samples(clip_dir: Path) -> list[Sample]:
    return [
        Sample(id="emer-1", corpus="llava", video=str(clip_dir / "a.mp4"), label="anxious", label_raw="anxious",
               subtitle="How could a group of rookies win?", reasoning="A furrowed brow; a fast, low voice.",
               meta={"question": PROMPTS["train"]}),
        Sample(id="dfew-2", corpus="llava", video=str(clip_dir / "b.mp4"), label="sad", label_raw="sad",
               meta={"question": PROMPTS["label"]}),
        Sample(id="rav-3", corpus="llava", audio=str(clip_dir / "sub" / "c.wav"), label="fear", label_raw="fear",
               meta={"question": PROMPTS["label"]}),
    ]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_round_trip(clip_dir, tmp_path, suffix):
    samples = _samples(clip_dir)
    path = llava.export(samples, tmp_path / f"train{suffix}", data_folder=clip_dir)
    assert import_corpus("llava", path, data_folder=clip_dir).samples == samples


def test_export_shape(clip_dir, tmp_path):
    path = llava.export(_samples(clip_dir), tmp_path / "train.json", data_folder=clip_dir)
    emer, label_only, audio_only = json.loads(path.read_text())
    assert emer["video"] == "a.mp4" and "audio" not in emer
    assert emer["conversations"][0] == {
        "from": "human",
        "value": '<video>\n<audio>\nThe subtitle of the video reads: "How could a group of rookies win?"\n'
                 + PROMPTS["train"]}
    assert emer["conversations"][1] == {
        "from": "gpt", "value": "<think>A furrowed brow; a fast, low voice.</think>\n<answer>anxious</answer>"}
    assert label_only["conversations"] == [{"from": "human", "value": f"<video>\n<audio>\n{PROMPTS['label']}"},
                                           {"from": "gpt", "value": "sad"}]
    assert audio_only["audio"] == "sub/c.wav" and audio_only["conversations"][0]["value"].startswith("<audio>\n")


def test_export_with_a_named_prompt_and_default_folder(clip_dir):
    entry = llava.to_entry(_samples(clip_dir)[1], clip_dir, prompt="eval")
    assert entry["conversations"][0]["value"] == "<video>\n<audio>\n" + PROMPTS["eval"]
    path = llava.export(_samples(clip_dir)[1:2], clip_dir / "x.jsonl")
    assert json.loads(path.read_text())["video"] == "b.mp4"


def test_export_refuses_unlabelled_and_bad_suffix(clip_dir, tmp_path):
    unlabelled = Sample(id="u", corpus="x", video=str(clip_dir / "a.mp4"))
    with pytest.raises(ValueError, match="has no label"):
        llava.export([unlabelled], tmp_path / "x.json")
    with pytest.raises(ValueError, match=r"must end in \.json or \.jsonl"):
        llava.export([], tmp_path / "x.yaml")


def test_repeated_clip_gets_numbered_ids(clip_dir, tmp_path):
    sample = _samples(clip_dir)[1]
    entry = llava.to_entry(sample, clip_dir)
    del entry["id"]
    path = fakes.write_text(tmp_path / "dup.jsonl", (json.dumps(entry) + "\n") * 3)
    assert [s.id for s in llava.load(path, data_folder=clip_dir).samples] == ["b", "b#2", "b#3"]


@pytest.mark.parametrize("entry, problem", [
    ({"video": "a.mp4", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "bored"}]},
     "answer 'bored' names no known emotion"),
    ({"video": "a.mp4"}, "'conversations' must be a list"),
    ({"video": "a.mp4", "conversations": [{"from": "gpt", "value": "sad"}, {"from": "human", "value": "q"}]},
     "expected a human turn then a gpt turn"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "sad"}]}, "no media key"),
    ({"video": "", "conversations": []}, "'video' must be a non-empty string"),
    ("just a string", "expected a JSON object"),
])
def test_malformed_entries_are_errors(clip_dir, tmp_path, entry, problem):
    good = {"video": "b.mp4", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "sad"}]}
    path = fakes.write_text(tmp_path / "bad.jsonl", json.dumps(good) + "\n" + json.dumps(entry) + "\n")
    with pytest.raises(CorpusError) as info:
        llava.load(path, data_folder=clip_dir)
    assert str(info.value).startswith(f"{path}:2: ") and problem in str(info.value)
    listed = fakes.write_text(tmp_path / "bad.json", json.dumps([good, entry]))
    with pytest.raises(CorpusError, match=r"bad\.json: entry 1: "):
        llava.load(listed, data_folder=clip_dir)


def test_unknown_answers_allowed(clip_dir, tmp_path):
    entry = {"video": "a.mp4", "conversations": [{"from": "human", "value": "q"},
                                                 {"from": "gpt", "value": "<think>x</think><answer>bored</answer>"}]}
    path = fakes.write_text(tmp_path / "u.json", json.dumps([entry]))
    (sample,) = llava.load(path, data_folder=clip_dir, allow_unknown_labels=True).samples
    assert (sample.label, sample.label_raw, sample.reasoning) == (None, "bored", "x")


def test_file_errors(tmp_path):
    with pytest.raises(CorpusError, match="LLaVA conversation file not found"):
        llava.load(tmp_path / "none.json")
    path = fakes.write_text(tmp_path / "obj.json", '{"video": "a.mp4"}')
    with pytest.raises(CorpusError, match="expected a JSON list of entries"):
        llava.load(path)
    broken = fakes.write_text(tmp_path / "broken.json", '[\n{"video": \n')
    with pytest.raises(CorpusError, match=r"broken\.json:3: not valid JSON"):
        llava.load(broken)
    with pytest.raises(ValueError, match="no official folds"):
        llava.load(path, split="train")
