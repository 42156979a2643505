"""Evaluation: both scoring tracks, per-fold averaging, resume, damaged inputs, the output contract.

Scoring is checked exactly on hand-written prediction rows (``score_predictions``) and end to end
with a stub policy whose answer is a function of the clip's grey level, so the expected metrics are
known. A tiny random Qwen2.5-Omni thinker then runs the real pipeline: its answers are junk, but the
files and their fields must be right.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from r1omni.evaluate import EvalOptions, evaluate, label_set_for, score_predictions
from r1omni.labels import DFEW, get_label_set
from r1omni.media import write_audio, write_clip
from r1omni.models import Completions, PreparedBatch
from r1omni.schema import ManifestError, Sample

TRACK_KEYS = {"war", "uar", "per_class_recall", "confusion", "labels", "unparseable", "format_rate", "n"}
ROW_KEYS = {"id", "label", "output", "answer", "pred", "format_ok"}


def row(id_, label, pred, pred_strict, fold=None, format_ok=True, error=None):
    """A prediction row as ``evaluate`` writes it (answer text irrelevant to scoring)."""
    return {"id": id_, "label": label, "output": "x", "answer": "x", "pred": pred, "pred_strict": pred_strict,
            "format_ok": format_ok, "think": None, "fold": fold, "error": error}


def volume(track):
    """The figures of one track that must agree between two runs."""
    return {k: track[k] for k in ("war", "uar", "per_class_recall", "confusion", "unparseable", "n")}


# --------------------------------------------------------------------------------- scoring rows
def test_tracks_differ_when_answers_are_synonyms():
    rows = [row("a", "happy", "happy", None),          # "Happiness": right only after normalisation
            row("b", "sad", "sad", "sad"),              # exact word: right on both tracks
            row("c", "angry", "angry", None, format_ok=False),  # "anger"
            row("d", "fear", None, None)]               # "banana": wrong and unparseable on both
    metrics = score_predictions(rows, DFEW)
    strict, normalized = metrics["strict"], metrics["normalized"]
    assert strict["war"] == pytest.approx(1 / 4)
    assert normalized["war"] == pytest.approx(3 / 4)
    # Four classes present, recall 0/1/0/0 vs 1/1/1/0; absent classes listed as None.
    assert strict["uar"] == pytest.approx(1 / 4)
    assert normalized["uar"] == pytest.approx(3 / 4)
    assert strict["per_class_recall"]["happy"] == 0.0 and normalized["per_class_recall"]["happy"] == 1.0
    assert normalized["per_class_recall"]["disgust"] is None
    assert strict["unparseable"] == 3 and normalized["unparseable"] == 1
    none_column = [r[-1] for r in strict["confusion"]]
    assert sum(none_column) == 3 and strict["confusion"][DFEW.labels.index("sad")][DFEW.labels.index("sad")] == 1
    assert strict["format_rate"] == normalized["format_rate"] == pytest.approx(3 / 4)
    assert metrics["n"] == 4 and metrics["skipped"] == 0


def test_mean_over_folds_is_the_mean_of_per_fold_figures():
    rows = [row("f1a", "happy", "happy", "happy", fold=1), row("f1b", "sad", "sad", "sad", fold=1),
            row("f2a", "happy", "happy", "happy", fold=2), row("f2b", "happy", "sad", "sad", fold=2),
            row("f2c", "sad", "happy", "happy", fold=2), row("f2d", "sad", "happy", "happy", fold=2)]
    track = score_predictions(rows, DFEW)["normalized"]
    assert track["folds"] == {"1": {"war": 1.0, "uar": 1.0, "n": 2},
                              "2": {"war": 0.25, "uar": 0.25, "n": 4}}
    mean = track["mean_over_folds"]
    assert mean["folds"] == 2
    assert mean["war"] == pytest.approx(0.625) and mean["uar"] == pytest.approx(0.625)
    assert mean["war_std"] == pytest.approx(0.375)
    assert track["war"] == pytest.approx(3 / 6)  # pooled: not the fold mean


def test_one_fold_gives_no_fold_table():
    rows = [row("a", "happy", "happy", "happy", fold=3), row("b", "sad", None, None, fold=3)]
    track = score_predictions(rows, DFEW)["strict"]
    assert "folds" not in track and "mean_over_folds" not in track


def test_rows_with_errors_are_skipped_and_counted():
    rows = [row("a", "happy", "happy", "happy"),
            row("b", "sad", None, None, format_ok=False, error="b.mp4: not a readable media file")]
    metrics = score_predictions(rows, DFEW)
    assert metrics["n"] == 1 and metrics["skipped"] == 1
    assert metrics["skipped_reasons"] == ["b.mp4: not a readable media file"]
    assert metrics["strict"]["war"] == 1.0 and metrics["normalized"]["n"] == 1


def test_label_set_for():
    dfew = [Sample(id="a", corpus="dfew", video="a.mp4", label="happy")]
    assert label_set_for(dfew) is get_label_set("dfew")
    assert label_set_for(dfew, "mafw") is get_label_set("mafw")
    mixed = [Sample(id="a", corpus="mine", video="a.mp4", label="sad"),
             Sample(id="b", corpus="mine", video="b.mp4", label="calm")]
    assert label_set_for(mixed).labels == ("calm", "sad")


# ----------------------------------------------------------------------- stub policy, end to end
# The stub reads the grey level of the (uniform) frames: level // 50 picks the completion.
COMPLETIONS = {
    1: "<think>The mouth corners turn up.</think>\n<answer>happy</answer>",
    2: "<think>The brows are lowered and the voice is loud.</think>\n<answer>Anger</answer>",
    3: "<think>The face shows no clear expression.</think>\n<answer>happiness</answer>",
    4: "sad",
}


class GreyLevelPolicy:
    """A deterministic stand-in for a model: answers from the frames' mean grey level.

    Records the subtitle of every clip it generates for (tests give each clip its id as subtitle),
    and raises on generate call ``fail_on_call`` to simulate an interruption.
    """

    family = "stub"
    tokenizer = None

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.module = torch.nn.Identity()
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.generated: list[str] = []

    @property
    def num_frames(self) -> int:
        return 2

    def check_clip(self, clip):
        pass  # reads any clip

    def prepare(self, clips):
        subtitles = [c.question.split('"')[1] for c in clips]
        levels = [int(round(float(c.frames.mean()))) // 50 for c in clips]
        return PreparedBatch(torch.zeros(len(clips), 1, dtype=torch.long), torch.ones(len(clips), 1, dtype=torch.long),
                             media={"levels": levels, "subtitles": subtitles})

    def generate(self, batch, num_return_sequences=1, sampling=None):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("interrupted")
        self.generated += batch.media["subtitles"]
        texts = [COMPLETIONS.get(level, "no idea") for level in batch.media["levels"]]
        n = len(texts)
        return Completions(ids=torch.zeros(n, 1, dtype=torch.long), mask=torch.ones(n, 1, dtype=torch.long),
                           texts=texts, clip_index=torch.arange(n))


class DarkerGreyPolicy(GreyLevelPolicy):
    """Another model: other weights, and it answers as if every clip were one grey level darker."""

    def __init__(self) -> None:
        super().__init__()
        self.module = torch.nn.Linear(2, 2)

    def prepare(self, clips):
        batch = super().prepare(clips)
        batch.media["levels"] = [level - 1 for level in batch.media["levels"]]
        return batch


@pytest.fixture(scope="module")
def grey_clips(tmp_path_factory):
    """grey level -> a 4-frame 32x32 mp4 of that uniform grey with a short tone."""
    folder = tmp_path_factory.mktemp("grey")
    tone = (0.2 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000)).astype(np.float32)
    return {level: write_clip(folder / f"grey{level}.mp4", np.full((4, 32, 32, 3), level * 50 + 25, np.uint8), 8,
                              tone)
            for level in (1, 2, 3, 4)}


@pytest.fixture(scope="module")
def corrupt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "corrupt.mp4"
    path.write_bytes(b"this is not a video " * 20)
    return path


# (level of the clip, true label, fold): strict right on 1 and 4 only, normalized also on 2 and 3.
DESIGN = [(1, "happy", 1), (2, "angry", 1), (3, "happy", 1), (4, "sad", 2), (4, "sad", 2), (2, "fear", 2)]


def stub_samples(grey_clips):
    return [Sample(id=f"clip{i}", corpus="dfew", video=str(grey_clips[level]), label=label, fold=fold,
                   subtitle=f"clip{i}")
            for i, (level, label, fold) in enumerate(DESIGN)]


def test_evaluate_scores_both_tracks_end_to_end(tmp_path, grey_clips):
    samples = stub_samples(grey_clips)
    metrics = evaluate(GreyLevelPolicy(), samples, tmp_path, options=EvalOptions(batch_size=4))
    assert metrics["label_set"] == "dfew"
    assert metrics["strict"]["war"] == pytest.approx(3 / 6)   # clip0, clip3, clip4
    assert metrics["normalized"]["war"] == pytest.approx(5 / 6)
    # Normalized: happy 2/2, angry 1/1, sad 2/2, fear 0/1 (answered "angry").
    assert metrics["normalized"]["uar"] == pytest.approx(3 / 4)
    assert metrics["strict"]["uar"] == pytest.approx((1 / 2 + 0 + 1 + 0) / 4)
    assert metrics["normalized"]["folds"]["1"]["war"] == 1.0
    assert metrics["normalized"]["folds"]["2"]["war"] == pytest.approx(2 / 3)
    assert metrics["normalized"]["mean_over_folds"]["war"] == pytest.approx(5 / 6)
    assert metrics["strict"]["format_rate"] == pytest.approx(4 / 6)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert by_id["clip2"]["answer"] == "happiness"
    assert by_id["clip2"]["pred"] == "happy" and by_id["clip2"]["pred_strict"] is None
    assert by_id["clip3"]["format_ok"] is False and by_id["clip3"]["pred"] == "sad"
    assert by_id["clip1"]["think"] == "The brows are lowered and the voice is loud."
    assert on_disk(tmp_path) == metrics
    report = (tmp_path / "report.md").read_text()
    assert "| strict | 0.5000 |" in report and "mean over 2 folds" in report


def on_disk(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_corrupt_media_is_recorded_and_skipped(tmp_path, grey_clips, corrupt_file):
    samples = stub_samples(grey_clips)[:3]
    samples.insert(1, Sample(id="broken", corpus="dfew", video=str(corrupt_file), label="sad", subtitle="broken"))
    policy = GreyLevelPolicy()
    metrics = evaluate(policy, samples, tmp_path, options=EvalOptions(batch_size=4))
    assert metrics["skipped"] == 1 and metrics["n"] == 3
    assert "corrupt.mp4" in metrics["skipped_reasons"][0]
    assert metrics["normalized"]["war"] == 1.0  # the broken clip is not counted as wrong
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "predictions.jsonl").read_text().splitlines())}
    assert "corrupt.mp4" in rows["broken"]["error"] and rows["broken"]["pred"] is None
    assert all(rows[i]["error"] is None for i in ("clip0", "clip1", "clip2"))
    assert "broken" not in policy.generated
    assert "1 skipped" in (tmp_path / "report.md").read_text()


def test_loading_ahead_writes_the_same_rows_and_decodes_in_the_background(tmp_path, grey_clips, corrupt_file,
                                                                           monkeypatch):
    """``load_ahead``: the next batch's clips decode in a worker thread while a batch generates (on by default
    only on a GPU); the rows, their order and the failed clip are those of loading in turn."""
    import threading

    from r1omni.clips import ClipLoader

    samples = stub_samples(grey_clips)
    samples.insert(3, Sample(id="broken", corpus="dfew", video=str(corrupt_file), label="sad", subtitle="broken"))
    threads: list[str] = []
    load_many = ClipLoader.load_many

    def recording(self, chunk):
        threads.append(threading.current_thread().name)
        return load_many(self, chunk)

    monkeypatch.setattr(ClipLoader, "load_many", recording)
    written = {}
    for ahead in (False, True):
        metrics = evaluate(GreyLevelPolicy(), samples, tmp_path / str(ahead),
                           options=EvalOptions(batch_size=2, load_ahead=ahead))
        written[ahead] = (tmp_path / str(ahead) / "predictions.jsonl").read_text()
        assert metrics["skipped"] == 1
    assert written[True] == written[False]
    assert threads[:4] == ["MainThread"] * 4                                       # in turn: 4 batches, here
    assert len(threads) == 8 and all(name.startswith("load-ahead") for name in threads[4:])


def test_resume_after_an_interruption(tmp_path, grey_clips):
    samples = stub_samples(grey_clips)
    options = EvalOptions(batch_size=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        evaluate(GreyLevelPolicy(fail_on_call=2), samples, tmp_path / "resumed", options=options)
    predictions = tmp_path / "resumed" / "predictions.jsonl"
    assert [json.loads(line)["id"] for line in predictions.read_text().splitlines()] == ["clip0", "clip1"]
    assert not (tmp_path / "resumed" / "metrics.json").exists()

    second = GreyLevelPolicy()
    resumed = evaluate(second, samples, tmp_path / "resumed", options=options)
    assert second.generated == ["clip2", "clip3", "clip4", "clip5"]
    ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
    assert sorted(ids) == sorted(s.id for s in samples)  # each once

    clean = evaluate(GreyLevelPolicy(), samples, tmp_path / "clean", options=options)
    for track in ("strict", "normalized"):
        assert volume(resumed[track]) == volume(clean[track])
        assert resumed[track]["mean_over_folds"] == clean[track]["mean_over_folds"]
    assert resumed["reasoning"] == clean["reasoning"]

    # Nothing left to do: no generation, same figures.
    third = GreyLevelPolicy()
    again = evaluate(third, samples, tmp_path / "resumed", options=options)
    assert third.calls == 0 and volume(again["normalized"]) == volume(clean["normalized"])


def test_truncated_last_line_is_generated_again(tmp_path, grey_clips):
    samples = stub_samples(grey_clips)
    clean = evaluate(GreyLevelPolicy(), samples, tmp_path, options=EvalOptions(batch_size=4))
    predictions = tmp_path / "predictions.jsonl"
    text = predictions.read_text()
    predictions.write_text(text[:len(text) - 25])  # the last row cut mid-JSON, no newline
    policy = GreyLevelPolicy()
    metrics = evaluate(policy, samples, tmp_path, options=EvalOptions(batch_size=4))
    assert policy.generated == ["clip5"]
    lines = predictions.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [s.id for s in samples]
    assert volume(metrics["normalized"]) == volume(clean["normalized"])


def test_another_models_predictions_are_not_reused(tmp_path, grey_clips, caplog):
    samples = stub_samples(grey_clips)
    first = evaluate(GreyLevelPolicy(), samples, tmp_path / "shared")
    other = DarkerGreyPolicy()
    with caplog.at_level(logging.WARNING, logger="r1omni.evaluate"):
        reused = evaluate(other, samples, tmp_path / "shared")
    alone = evaluate(DarkerGreyPolicy(), samples, tmp_path / "alone")
    assert other.generated == [s.id for s in samples]          # every clip answered again, by the new model
    assert "holds predictions made with other settings (model.weights_sha256 " in caplog.text
    assert volume(reused["normalized"]) == volume(alone["normalized"]) != volume(first["normalized"])
    assert ((tmp_path / "shared" / "predictions.jsonl").read_text()
            == (tmp_path / "alone" / "predictions.jsonl").read_text())


def test_other_answering_settings_start_over_and_batch_size_does_not(tmp_path, grey_clips, caplog):
    samples = stub_samples(grey_clips)
    evaluate(GreyLevelPolicy(), samples, tmp_path, options=EvalOptions(batch_size=4))
    same = GreyLevelPolicy()
    evaluate(same, samples, tmp_path, options=EvalOptions(batch_size=2))
    assert same.calls == 0
    dfew = get_label_set("dfew")
    options, labels = {}, dfew
    for change, named in ((dict(max_new_tokens=16), "sampling.max_new_tokens 512 -> 16"),
                          (dict(prompt="train"), "prompt 'inference' -> 'train'"),
                          (dict(modalities="video"), "modalities 'video_audio' -> 'video'"),
                          ("labels", "label_set.name 'dfew' -> 'renamed'")):
        if change == "labels":
            labels = type(dfew)("renamed", dfew.labels, dfew.raw)
        else:
            options.update(change)
        policy = GreyLevelPolicy()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="r1omni.evaluate"):
            evaluate(policy, samples, tmp_path, labels=labels, options=EvalOptions(**options))
        assert f"other settings ({named})" in caplog.text and policy.calls == 1, change


def test_model_identity_tells_models_apart_by_their_weights():
    from r1omni.evaluate import model_identity
    from r1omni.models import init_preset

    first, again, other = (model_identity(init_preset("qwen2.5-omni-tiny", seed=seed)) for seed in (0, 0, 1))
    assert first == again and first["weights_sha256"] != other["weights_sha256"]
    assert {k: v for k, v in first.items() if k != "weights_sha256"} == {
        k: v for k, v in other.items() if k != "weights_sha256"}


def test_a_damaged_prediction_before_the_last_names_the_file_and_line(tmp_path, grey_clips):
    samples = stub_samples(grey_clips)
    evaluate(GreyLevelPolicy(), samples, tmp_path, options=EvalOptions(batch_size=4))
    predictions = tmp_path / "predictions.jsonl"
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text(lines[0] + lines[1][:20] + "\n" + "".join(lines[2:]))
    with pytest.raises(ManifestError, match=r"predictions.jsonl:2: not valid JSON"):
        evaluate(GreyLevelPolicy(), samples, tmp_path, options=EvalOptions(batch_size=4))


def test_audio_too_short_for_the_model_is_a_row_with_its_error(tmp_path, grey_clips):
    from r1omni.models import init_preset

    short = write_audio(tmp_path / "short.wav", (0.3 * np.sin(np.arange(160) / 5)).astype(np.float32))  # 10 ms
    samples = stub_samples(grey_clips)[:2] + [Sample(id="short", corpus="dfew", audio=str(short), label="sad")]
    metrics = evaluate(init_preset("qwen2.5-omni-tiny", seed=0), samples, tmp_path / "out",
                       options=EvalOptions(batch_size=3, max_new_tokens=4))
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "predictions.jsonl").read_text().splitlines())}
    assert metrics["n"] == 2 and metrics["skipped"] == 1
    assert rows["short"]["error"].startswith(f"{short}: audio of 160 samples")
    assert rows["clip0"]["error"] is None and isinstance(rows["clip0"]["output"], str)


def test_rejects_unlabelled_foreign_labels_and_repeated_ids(tmp_path, grey_clips):
    video = str(grey_clips[1])
    with pytest.raises(ValueError, match="no label"):
        evaluate(GreyLevelPolicy(), [Sample(id="a", corpus="dfew", video=video)], tmp_path)
    with pytest.raises(ValueError, match="calm"):
        evaluate(GreyLevelPolicy(), [Sample(id="a", corpus="dfew", video=video, label="calm")], tmp_path)
    twice = [Sample(id="a", corpus="dfew", video=video, label="sad")] * 2
    with pytest.raises(ValueError, match="unique.*'a'"):
        evaluate(GreyLevelPolicy(), twice, tmp_path)


# ------------------------------------------------------------------------ a real tiny model
@pytest.fixture(scope="module")
def synth_test_split(tmp_path_factory):
    from r1omni.schema import read_samples
    from r1omni.synth import generate_benchmark

    manifests = generate_benchmark(tmp_path_factory.mktemp("synth"), preset="tiny", seed=0, splits=["test_id"],
                                   progress=False)
    return read_samples(manifests["test_id"])


def test_tiny_model_output_contract(tmp_path, synth_test_split, corrupt_file):
    from r1omni.models import init_preset

    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    samples = synth_test_split[:5] + [Sample(id="broken", corpus="synth", video=str(corrupt_file), label="sad")]
    seen = []
    metrics = evaluate(policy, samples, tmp_path, options=EvalOptions(batch_size=4, max_new_tokens=6),
                       progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 6), (6, 6)]
    labels = list(get_label_set("synth").labels)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [s.id for s in samples]
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["pred"] is None or r["pred"] in labels
        assert isinstance(r["format_ok"], bool)
        assert (r["error"] is None) == (r["id"] != "broken")
        if r["error"] is None:
            assert isinstance(r["output"], str) and isinstance(r["answer"], str)
    assert on_disk(tmp_path) == metrics
    assert metrics["n"] == 5 and metrics["skipped"] == 1
    for track in ("strict", "normalized"):
        figures = metrics[track]
        assert TRACK_KEYS <= set(figures)
        assert figures["labels"] == labels and figures["n"] == 5
        for key in ("war", "uar", "format_rate"):
            assert 0.0 <= figures[key] <= 1.0
        assert all(v is None or 0.0 <= v <= 1.0 for v in figures["per_class_recall"].values())
        assert np.array(figures["confusion"]).shape == (len(labels), len(labels) + 1)
        assert np.array(figures["confusion"]).sum() == 5
        assert 0 <= figures["unparseable"] <= 5
        png = tmp_path / f"confusion_{track}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["reasoning"]["n"] == 5
    assert (tmp_path / "report.md").read_text().startswith("# Evaluation (5 clips")


def test_face_crop_is_recorded_per_row_and_counted(tmp_path, grey_clips):
    from real_media import small_face_frames

    face = write_clip(tmp_path / "face.mp4", small_face_frames(4), 8)
    samples = stub_samples(grey_clips)[:2] + [Sample(id="face", corpus="dfew", video=str(face), label="happy",
                                                     subtitle="face")]
    metrics = evaluate(GreyLevelPolicy(), samples, tmp_path / "out", options=EvalOptions(batch_size=4, face_crop=True))
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "predictions.jsonl").read_text().splitlines())}
    assert rows["face"]["face_crop"]["face_found"] and not rows["clip0"]["face_crop"]["face_found"]
    assert metrics["face_crop"] == {"clips": 3, "no_face": 2}
    assert "no face found in 2 of 3 clips" in (tmp_path / "out" / "report.md").read_text()
