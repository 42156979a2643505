"""Reasoning checks on hand-written ``<think>`` texts: evidence words, the concluded emotion, agreement
with the answer, and the hallucination rate of cue claims against known true cues."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import r1omni.explain.reasoning
from r1omni.explain.reasoning import hallucination, mentions_audio, mentions_visual, reasoning_quality
from r1omni.labels import concluded_label
from r1omni.schema import Sample
from r1omni.synth.cues import PROTOTYPES
from r1omni.synth.text import write_reasoning

# The happy prototype: mouth up, lips parted, brows level; pitch high, lively, fast, loud.
HAPPY_CUES = PROTOTYPES["happy"]


@pytest.mark.parametrize("text, visual, audio", [
    ("The brows are lowered and the eyes squint.", True, False),
    ("The pitch is high and the speech is fast.", False, True),
    ("Her smile is broad while her voice trembles.", True, True),
    ("The subtitle says they won the match.", False, False),
    ("", False, False),
    ("Eyebrow-raising news, LOUDLY announced.", False, True),   # hyphenated words count as one word
])
def test_mentions_visual_and_audio(text, visual, audio):
    assert mentions_visual(text) is visual
    assert mentions_audio(text) is audio


@pytest.mark.parametrize("text, label", [
    ("The face suggests happiness.", "happy"),
    ("The voice hints weakly at sadness, but the facial cues point to anger.", "angry"),
    ("Both cues agree. Therefore, the emotion is fear.", "fear"),
    ("The speaker sounds Furious!", "angry"),
    ("The mouth corners turn up.", None),
])
def test_reasoning_label_is_the_last_emotion_named(text, label):
    assert concluded_label(text) == label


def test_hallucination_counts_contradicted_claims():
    think = ("In the video, the mouth corners turn up and the brows are lowered. "
             "In the audio, the pitch is high and the voice is soft.")
    # True: mouth up, pitch high. False: brows are level, the voice is loud.
    assert hallucination(think, HAPPY_CUES) == (4, 2)
    assert hallucination("The person seems happy.", HAPPY_CUES) == (0, 0)
    assert hallucination("The voice is loud and the lips are parted.", HAPPY_CUES) == (2, 0)


@pytest.mark.parametrize("label", sorted(PROTOTYPES))
def test_generated_reasoning_is_faithful_to_its_cues(label):
    think = write_reasoning(PROTOTYPES[label], label, np.random.default_rng(0), carrier="both")
    claims, wrong = hallucination(think, PROTOTYPES[label])
    assert claims > 0 and wrong == 0
    assert concluded_label(think) == label
    assert mentions_visual(think) and mentions_audio(think)
    # The same text checked against another emotion's cues contradicts itself somewhere.
    other = "sad" if label != "sad" else "happy"
    assert hallucination(think, PROTOTYPES[other])[1] > 0


def test_reasoning_quality_summary():
    rows = [
        # faithful, visual + audio, argues for the answer
        {"id": "a", "think": "The mouth corners turn up and the pitch is high, so: happiness.", "pred": "happy",
         "format_ok": True},
        # one false claim of two, visual only, argues for something else than its answer
        {"id": "b", "think": "The mouth corners turn up and the brows are lowered: anger.", "pred": "happy",
         "format_ok": True},
        # audio only, no emotion word, clip without known cues
        {"id": "c", "think": "The voice is soft.", "pred": "sad", "format_ok": False},
        # no reasoning at all
        {"id": "d", "think": None, "pred": None, "format_ok": False},
    ]
    samples = {s.id: s for s in (Sample(id="a", corpus="synth", video="a.mp4", meta={"cues": HAPPY_CUES}),
                                 Sample(id="b", corpus="synth", video="b.mp4", meta={"cues": HAPPY_CUES}),
                                 Sample(id="c", corpus="dfew", video="c.mp4"))}
    summary = reasoning_quality(rows, samples)
    assert summary["n"] == 4 and summary["with_reasoning"] == 3
    assert summary["format_rate"] == pytest.approx(2 / 4)
    assert summary["mentions_visual_rate"] == pytest.approx(2 / 3)
    assert summary["mentions_audio_rate"] == pytest.approx(2 / 3)
    assert summary["mentions_both_rate"] == pytest.approx(1 / 3)
    assert summary["reasoning_concludes_rate"] == pytest.approx(2 / 3)
    assert summary["reasoning_answer_agreement"] == pytest.approx(1 / 2)
    # Only a and b have true cues: 4 claims, 1 contradicted, in 1 of 2 clips.
    assert summary["cue_claims"] == 4
    assert summary["cue_claims_per_clip"] == pytest.approx(2.0)
    assert summary["hallucination_rate"] == pytest.approx(1 / 4)
    assert summary["clips_with_hallucination_rate"] == pytest.approx(1 / 2)


def test_modality_citation_on_single_carrier_clips():
    rows = [{"id": "v1", "think": "The voice is soft.", "pred": "sad"},
            {"id": "v2", "think": "The mouth corners turn down.", "pred": "sad"},     # ignores the voice
            {"id": "f1", "think": "The brows are lowered and the voice is loud.", "pred": "angry"},
            {"id": "b1", "think": "The voice is loud.", "pred": "angry"}]
    carriers = {"v1": "voice", "v2": "voice", "f1": "face", "b1": "both"}
    samples = {i: Sample(id=i, corpus="synth", video=f"{i}.mp4", meta={"carrier": c}) for i, c in carriers.items()}
    summary = reasoning_quality(rows, samples)
    assert summary["voice_only_clips"] == 2 and summary["voice_only_cites_voice_rate"] == pytest.approx(0.5)
    assert summary["face_only_clips"] == 1 and summary["face_only_cites_face_rate"] == pytest.approx(1.0)
    assert "voice_only_clips" not in reasoning_quality(rows, {})


def test_reasoning_quality_without_reasoning_or_cues():
    summary = reasoning_quality([{"id": "x", "think": None, "pred": "sad", "format_ok": False}])
    assert summary == {"n": 1, "format_rate": 0.0, "with_reasoning": 0}
    summary = reasoning_quality([{"id": "x", "think": "The face is blank.", "pred": "neutral", "format_ok": True}])
    assert "hallucination_rate" not in summary and summary["mentions_visual_rate"] == 1.0
    assert reasoning_quality([]) == {"n": 0, "format_rate": 0.0, "with_reasoning": 0}


def test_docstring_examples():
    result = doctest.testmod(r1omni.explain.reasoning)
    assert result.attempted > 0 and result.failed == 0


def test_subtitle_quotes_are_checked_against_the_clip():
    from r1omni.explain.reasoning import quoted_subtitle
    from r1omni.schema import Sample

    assert quoted_subtitle("no quote here") is None
    samples = {"a": Sample(id="a", corpus="synth", video="a.mp4", subtitle="See you soon."),
               "b": Sample(id="b", corpus="synth", video="b.mp4", subtitle="The bus is late.")}
    rows = [{"id": "a", "think": 'In the text, the subtitle reads: "See you soon." Fine.', "pred": None,
             "format_ok": True},
            {"id": "b", "think": 'In the text, the subtitle reads: "See you soon." Fine.', "pred": None,
             "format_ok": True}]
    summary = reasoning_quality(rows, samples)
    assert summary["subtitle_quotes"] == 2 and summary["subtitle_quote_accuracy"] == 0.5


def test_segments_cut_clauses_and_check_each_ones_claims():
    from r1omni.claims import CONTRADICTED, NOT_CHECKABLE
    from r1omni.explain.reasoning import Segment, segments

    cut = segments("The brows are raised; the pitch is high, but the voice trembles. Happy.", {"pitch": "low"})
    assert all(isinstance(s, Segment) for s in cut)
    assert [s.text for s in cut] == ["The brows are raised; ", "the pitch is high, ", "but the voice trembles. ",
                                     "Happy."]
    assert [[(c.cue, c.verdict) for c in s.claims] for s in cut] == [
        [("brow_raise", NOT_CHECKABLE)], [("pitch", CONTRADICTED)], [("tremor", NOT_CHECKABLE)], []]
    assert segments(None) == [] and segments("") == []


def test_reasoning_never_reaches_the_server():
    """The clause segments are explain's own dataclasses, so explain (a floor below serve) imports no
    serve module, not even through another."""
    from test_imports import import_graph

    graph = import_graph()
    reached, todo = set(), ["r1omni.explain.reasoning", "r1omni.explain.attribution"]
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert not {m for m in reached if m.startswith("r1omni.serve")}
