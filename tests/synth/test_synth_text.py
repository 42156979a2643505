"""The phrase bank (of r1omni.claims) against the benchmark, descriptions, reasoning and the claim extractor,
on hand-written cases."""

from __future__ import annotations

import doctest
import re

import numpy as np
import pytest

import r1omni.synth.text
from r1omni.claims import CUES, FACE_CUES, PHRASES, VOICE_CUES, claim_errors, cue_levels, extract_claims
from r1omni.labels import DFEW, SYNONYMS
from r1omni.synth import PROTOTYPES, corpus, describe, write_reasoning
from r1omni.synth.text import HINT_SUBTITLES, NEUTRAL_SUBTITLES
from r1omni.template import parse_completion, render_completion

EMOTION_WORDS = sorted(set(SYNONYMS) | set(DFEW.labels))


def emotion_words_in(text: str) -> list[str]:
    lowered = text.lower()
    return [w for w in EMOTION_WORDS if re.search(rf"\b{re.escape(w)}\b", lowered)]


def test_every_phrase_reads_back_as_itself_only():
    for cue, levels in PHRASES.items():
        for level, phrases in levels.items():
            for phrase in phrases:
                assert extract_claims(phrase) == [(cue, level)], phrase
                assert extract_claims(f"Clearly, {phrase.capitalize()}.") == [(cue, level)], phrase


def test_phrase_bank_covers_every_cue_level():
    for cue in CUES.values():
        assert set(PHRASES[cue.name]) == set(cue.levels), cue.name
    assert PHRASES["face"].keys() == {"neutral"} and PHRASES["voice"].keys() == {"neutral"}


@pytest.mark.parametrize("text, claims", [
    ("In the video, the mouth corners turn up and the lips are parted. In the audio, the pitch is high, "
     "the speech is fast and the voice is loud.",
     [("mouth_curve", "up"), ("mouth_open", "parted"), ("pitch", "high"), ("rate", "fast"), ("loudness", "loud")]),
    ("The brows knit into a frown, the voice sounds rough.", [("brow_tilt", "inner_down"), ("harshness", "harsh")]),
    ("The voice is not breathy and the voice is steady.", [("breathiness", "clear"), ("tremor", "steady")]),
    ("The face shows no clear expression.  The voice   shows no clear cue.",
     [("face", "neutral"), ("voice", "neutral")]),
    ("He looks at the camera and speaks.", []),
    ("", []),
])
def test_extract_claims(text, claims):
    assert extract_claims(text) == claims


def test_claim_errors_flags_only_false_claims():
    cues = {"face": dict(PROTOTYPES["happy"]["face"]), "voice": dict(PROTOTYPES["neutral"]["voice"])}
    true_text = "The mouth corners turn up and the lips are parted. The voice shows no clear cue."
    assert claim_errors(true_text, cues) == []
    false_text = ("The mouth corners turn down and the lips are parted. The pitch is high. "
                  "The face shows no clear expression.")
    assert claim_errors(false_text, cues) == [("mouth_curve", "down", "up"), ("pitch", "high", "medium"),
                                              ("face", "neutral", "expressive")]
    # A claim about a cue the caller did not give is not judged.
    assert claim_errors("The pitch is high.", {"face": cues["face"]}) == []


def test_cue_levels_of_prototypes():
    levels = cue_levels(PROTOTYPES["surprise"])
    assert (levels["mouth_open"], levels["brow_raise"], levels["eye_open"]) == ("wide", "raised", "wide")
    assert (levels["pitch"], levels["contour"]) == ("high", "rising")
    assert levels["face"] == "expressive" and levels["voice"] == "expressive"
    assert cue_levels(PROTOTYPES["neutral"])["face"] == "neutral"
    assert cue_levels({"pitch": -0.9}) == {"pitch": "low"}  # flat dicts work; no aggregate without all cues
    with pytest.raises(KeyError, match="unknown cue"):
        cue_levels({"smile": 1.0})


def test_prototypes_of_different_emotions_differ_in_levels():
    for modality, cues in (("face", FACE_CUES), ("voice", VOICE_CUES)):
        signatures = {label: tuple(cue_levels(PROTOTYPES[label])[c.name] for c in cues) for label in DFEW.labels}
        assert len(set(signatures.values())) == len(DFEW.labels), (modality, signatures)


@pytest.mark.parametrize("label", DFEW.labels)
def test_describe_has_no_emotion_words_and_true_claims(label):
    text = describe(PROTOTYPES[label])
    assert emotion_words_in(text) == []
    assert extract_claims(text) and claim_errors(text, PROTOTYPES[label]) == []


def test_describe_neutral_says_nothing_happens():
    assert describe(PROTOTYPES["neutral"]) == "The face shows no clear expression. The voice shows no clear cue."


@pytest.mark.parametrize("carrier, label_modality", [("both", "both"), ("face", "face"), ("voice", "voice"),
                                                     ("conflict", "face"), ("conflict", "voice")])
def test_reasoning_is_true_parseable_and_concludes_with_label(carrier, label_modality):
    rest = {m: dict(PROTOTYPES["neutral"][m]) for m in ("face", "voice")}
    cues = {m: dict(PROTOTYPES["angry"][m]) if label_modality in (m, "both") else rest[m] for m in ("face", "voice")}
    if carrier == "conflict":
        weak = "voice" if label_modality == "face" else "face"
        cues[weak] = dict(PROTOTYPES["fear"][weak])
    text = write_reasoning(cues, "angry", np.random.default_rng(0), carrier=carrier, label_modality=label_modality,
                           distractor="fear" if carrier == "conflict" else None,
                           subtitle="Stop touching my things!", subtitle_carries_label=True)
    assert text.startswith("In the video") or text.startswith("Looking at the video")
    assert 'the subtitle reads: "Stop touching my things!"' in text
    assert claim_errors(text, cues) == []
    assert text.rstrip(".").split()[-1] == "angry"
    if carrier in ("face", "voice"):
        silent = "voice" if carrier == "face" else "face"
        assert (silent, "neutral") in extract_claims(text)
    if carrier == "conflict":
        assert "fear" in text and "weak" in text
    assert parse_completion(render_completion(text, "angry"), DFEW).label == "angry"


def test_reasoning_wording_varies_with_rng():
    texts = {write_reasoning(PROTOTYPES["sad"], "sad", np.random.default_rng(i), carrier="both") for i in range(12)}
    assert len(texts) > 3
    with pytest.raises(ValueError, match="conflict clip needs"):
        write_reasoning(PROTOTYPES["sad"], "sad", np.random.default_rng(0), carrier="conflict")


def test_subtitles_name_no_emotion():
    for sentence in NEUTRAL_SUBTITLES + tuple(s for group in HINT_SUBTITLES.values() for s in group):
        assert emotion_words_in(sentence) == [], sentence
    assert set(HINT_SUBTITLES) == set(DFEW.labels) - {"neutral"}


def test_corpus_covers_the_words_of_generated_texts():
    vocabulary = set(re.findall(r"[a-z'-]+", " ".join(corpus()).lower()))
    rng = np.random.default_rng(0)
    for label in DFEW.labels:
        text = describe(PROTOTYPES[label]) + " " + write_reasoning(
            PROTOTYPES[label], label, rng, carrier="both", subtitle=NEUTRAL_SUBTITLES[3])
        assert set(re.findall(r"[a-z'-]+", text.lower())) <= vocabulary
    assert len(corpus()) == len(set(corpus()))


def test_docstring_examples():
    result = doctest.testmod(r1omni.synth.text)
    assert result.attempted > 0 and result.failed == 0


def test_reading_practice_asks_for_the_subtitle_its_question_carries():
    from r1omni.explain.reasoning import quoted_subtitle
    from r1omni.synth.text import corpus_words, reading_practice
    from r1omni.template import with_subtitle

    words = corpus_words()
    assert len(words) > 100 and all(w == w.strip('".,?!:;') and " " not in w for w in words)
    rng = np.random.default_rng(3)
    draws = [reading_practice(rng, words) for _ in range(200)]
    real = set(NEUTRAL_SUBTITLES) | {s for group in HINT_SUBTITLES.values() for s in group}
    kinds = {"real": 0, "random": 0}
    for question, answer in draws:
        subtitle = re.match(r'The subtitle of the video reads: "([^"]*)"\n', question).group(1)
        assert question == with_subtitle("What does the subtitle say?", subtitle)
        assert answer.endswith(f'"{subtitle}"')
        if answer.startswith("In the text"):
            assert quoted_subtitle(answer) == subtitle       # the reasoning's quote, as the metric reads it
        if subtitle in real:
            kinds["real"] += 1
        else:
            kinds["random"] += 1
            assert set(subtitle.rstrip(".").lower().split()) <= {w.lower() for w in words}
    assert 30 < kinds["real"] < 100 and kinds["random"] > 100     # real_share 0.3 of 200 draws
    again = np.random.default_rng(3)
    assert [reading_practice(again, words) for _ in range(200)] == draws
