"""The modality-balance diagnosis (``r1omni.explain.balance``).

The probe is checked against features that do and do not carry the labels; answer changes against
attribution's flip rates on the same clips (the demo reuses those, so the two must agree), and against
a stub whose answer is a known function of the media; token norms against a projector scaled by a known
factor, on a real tiny preset.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import r1omni.explain.balance as balance
from r1omni.clips import ClipLoader
from r1omni.explain.attribution import attribute, summarize
from r1omni.explain.balance import (
    answer_changes,
    answer_changes_from_attribution,
    face_emotion,
    linear_probe,
    measure_balance,
    prompt_measures,
)
from r1omni.labels import get_label_set
from r1omni.media import write_clip
from r1omni.models import Completions, PreparedBatch, init_preset
from r1omni.schema import Sample

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")


def test_docstring_examples():
    result = doctest.testmod(balance)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("meta,face", [
    ({"carrier": "face"}, "sad"), ({"carrier": "both"}, "sad"), ({"carrier": "voice"}, "neutral"),
    ({"carrier": "conflict", "label_modality": "face", "distractor": "happy"}, "sad"),
    ({"carrier": "conflict", "label_modality": "voice", "distractor": "happy"}, "happy"),
    ({"carrier": "independent", "distractor": "angry"}, "sad"), ({}, None)])
def test_face_emotion(meta, face):
    assert face_emotion(Sample(id="x", corpus="synth", video="x.mp4", label="sad", meta=meta)) == face


# -- the probe -----------------------------------------------------------------------------------

def test_probe_reads_what_the_features_carry_and_nothing_else():
    rng = np.random.default_rng(0)
    labels = [EMOTIONS[i % 7] for i in range(140)]
    codes = rng.standard_normal((7, 32))
    carrying = np.stack([codes[EMOTIONS.index(label)] for label in labels]) + 0.5 * rng.standard_normal((140, 32))
    found = linear_probe(carrying, labels, seed=0)
    assert found["accuracy"] == 1.0 and found["chance"] == pytest.approx(1 / 7, abs=0.02)
    assert (found["n_train"], found["n_test"]) == (70, 70)       # stratified halves: 10 + 10 per class
    noise = linear_probe(rng.standard_normal((140, 32)), labels, seed=0)
    assert noise["accuracy"] < 0.35                              # 7 balanced classes: chance 1/7
    assert linear_probe(carrying, labels, seed=0) == found       # the split is fixed by the seed
    assert linear_probe(carrying, labels, seed=1)["accuracy"] == 1.0


def test_probe_without_a_test_half_or_a_second_class_says_so():
    assert linear_probe(np.zeros((1, 4)), ["sad"])["accuracy"] is None
    assert linear_probe(np.zeros((6, 4)), ["sad"] * 6)["accuracy"] is None


# -- answer changes --------------------------------------------------------------------------------

LOUD_RMS = 0.05


def rule_text(frames, waveform) -> str:
    """Bright frames mean happy, a loud voice angry, both surprise, neither neutral."""
    loud = waveform is not None and float(np.sqrt(np.mean(waveform ** 2))) > LOUD_RMS
    bright = frames is not None and float(frames.mean()) > 200
    label = {(True, True): "surprise", (True, False): "angry", (False, True): "happy"}.get((loud, bright), "neutral")
    return f"<think>I look and listen.</think>\n<answer>{label}</answer>"


class RulePolicy:
    """A model whose greedy answer is :func:`rule_text` of its input, and that cannot show prompt states."""

    family = "stub"
    num_frames = 2

    def __init__(self) -> None:
        self.module = torch.nn.Identity()
        self.generated = 0

    def prepare(self, clips) -> PreparedBatch:
        return PreparedBatch(torch.zeros(len(clips), 1, dtype=torch.long), torch.ones(len(clips), 1, dtype=torch.long),
                             media={"texts": [rule_text(c.frames, c.waveform) for c in clips]})

    def generate(self, batch, num_return_sequences=1, sampling=None) -> Completions:
        self.generated += 1
        texts = batch.media["texts"]
        ids = torch.zeros(len(texts), 1, dtype=torch.long)
        return Completions(ids=ids, mask=torch.ones_like(ids), texts=texts, clip_index=torch.arange(len(texts)))


@pytest.fixture(scope="module")
def rule_clips(tmp_path_factory) -> list[Sample]:
    """Grey + loud (voice carries), bright + silent (face carries), bright + loud (both), grey + silent."""
    folder = tmp_path_factory.mktemp("balance")
    loud = (0.5 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
    silent = np.zeros(8000, np.float32)
    media = [("voice", 127, loud, "angry"), ("face", 240, silent, "happy"), ("both", 240, loud, "surprise"),
             ("none", 127, silent, "neutral")]
    samples = []
    for carrier, level, waveform, label in media:
        path = write_clip(folder / f"{carrier}.mp4", np.full((4, 32, 32, 3), level, np.uint8), 8, waveform)
        samples.append(Sample(id=carrier, corpus="synth", video=str(path), label=label, meta={"carrier": carrier}))
    return samples


def test_answer_changes_without_each_modality(rule_clips):
    policy = RulePolicy()
    changes = answer_changes(policy, rule_clips, ClipLoader(num_frames=2), get_label_set("synth"), batch_size=3)
    # Blank frames change the face and both clips' answers (happy -> neutral, surprise -> angry); silence
    # changes the voice and both clips' (angry -> neutral, surprise -> happy); nothing changes the empty one.
    assert changes == {"no_video": 0.5, "no_audio": 0.5, "n": 4, "source": "decoded"}
    assert policy.generated == 2 * 3          # two batches, each answered with everything, without video, audio
    record = measure_balance(policy, rule_clips, ClipLoader(num_frames=2), get_label_set("synth"), flip_clips=2)
    assert record["answer_change"]["n"] == 2 and record["answer_change"]["no_audio"] == 0.5
    assert record["token_norms"] is None and record["face_probe"] is None    # no prompt states to read


def test_answer_changes_by_a_reference_clip_take_its_streams(rule_clips):
    loader, labels = ClipLoader(num_frames=2), get_label_set("synth")
    face_and_both = rule_clips[1:3]
    reference = loader.load_many([rule_clips[2]]).clips[0]          # bright frames and a loud voice
    # Blank frames change both clips' answers; the reference's bright frames change neither. Its loud voice
    # turns the silent face clip's happy into surprise and leaves the both clip as it is.
    assert answer_changes(RulePolicy(), face_and_both, loader, labels)["no_video"] == 1.0
    changes = measure_balance(RulePolicy(), face_and_both, loader, labels, flip_clips=2, method="reference",
                              reference=reference)["answer_change"]
    assert (changes["no_video"], changes["no_audio"]) == (0.0, 0.5)


def test_an_attribution_summary_is_reused_not_decoded_again(rule_clips):
    policy = RulePolicy()
    summary = {"n": 14, "no_video": {"flip_rate": 0.25}, "no_audio": {"flip_rate": 0.5}}
    record = measure_balance(policy, rule_clips, ClipLoader(num_frames=2), None, attribution=summary)
    assert record["answer_change"] == {"no_video": 0.25, "no_audio": 0.5, "n": 14, "source": "attribution"}
    assert policy.generated == 0
    assert answer_changes_from_attribution({"n": 0})["no_video"] is None


# -- a real tiny preset ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_clips(tmp_path_factory) -> list[Sample]:
    """Fourteen 56x56 clips with 1 s of audio, two per emotion, carried by the face or the voice."""
    folder = tmp_path_factory.mktemp("tiny_balance")
    rng = np.random.default_rng(0)
    samples = []
    for index in range(14):
        frames = rng.integers(0, 256, (8, 56, 56, 3), dtype=np.uint8)
        waveform = (0.2 * rng.standard_normal(16000)).astype(np.float32)
        path = write_clip(folder / f"clip{index}.mp4", frames, 8, waveform)
        samples.append(Sample(id=f"clip{index}", corpus="synth", video=str(path), label=EMOTIONS[index % 7],
                              meta={"carrier": "face" if index % 2 else "voice"}))
    return samples


@pytest.fixture(scope="module")
def tiny_policy():
    return init_preset("qwen2.5-omni-tiny", seed=0)


def test_decoded_answer_changes_equal_attribution_flip_rates(tiny_policy, tiny_clips):
    """The demo takes attribution's flip rates for the stages attribution covers and decodes the base's
    itself: both must measure the same thing."""
    loader = ClipLoader.for_policy(tiny_policy)
    labels = get_label_set("synth")
    results, _ = attribute(tiny_policy, tiny_clips[:6], loader, labels, batch_size=3, max_new_tokens=6)
    decoded = answer_changes(tiny_policy, tiny_clips[:6], loader, labels, batch_size=3, max_new_tokens=6)
    reused = answer_changes_from_attribution(summarize(results))
    assert {k: decoded[k] for k in ("no_video", "no_audio", "n")} == {k: reused[k] for k in ("no_video", "no_audio",
                                                                                                "n")}


def test_token_norm_ratios_follow_the_projectors(tiny_policy, tiny_clips):
    loader = ClipLoader.for_policy(tiny_policy)
    before, hidden, kept = prompt_measures(tiny_policy, tiny_clips[:4], loader, batch_size=3)
    assert [s.id for s in kept] == [s.id for s in tiny_clips[:4]] and hidden.shape == (4, 64)
    assert before["video_to_text"] == pytest.approx(before["video"] / before["text"])
    last = tiny_policy.thinker.model.visual.merger.mlp[2]
    try:
        with torch.no_grad():
            last.weight.mul_(10.0)
            last.bias.mul_(10.0)
        after, _, _ = prompt_measures(tiny_policy, tiny_clips[:4], loader, batch_size=3)
    finally:
        with torch.no_grad():
            last.weight.div_(10.0)
            last.bias.div_(10.0)
    assert after["video_to_text"] == pytest.approx(10 * before["video_to_text"], rel=1e-4)
    assert after["audio_to_text"] == pytest.approx(before["audio_to_text"], rel=1e-6)
    assert after["text"] == pytest.approx(before["text"], rel=1e-6)


def test_measure_balance_on_a_tiny_preset(tiny_policy, tiny_clips):
    record = measure_balance(tiny_policy, tiny_clips, ClipLoader.for_policy(tiny_policy), get_label_set("synth"),
                             flip_clips=2, max_new_tokens=4, seed=3)
    assert record["answer_change"]["n"] == 2 and record["answer_change"]["source"] == "decoded"
    norms = record["token_norms"]
    assert norms["n"] == 14 and all(norms[k] > 0 for k in ("video", "audio", "text", "video_to_text"))
    probe = record["face_probe"]
    assert probe["n_train"] + probe["n_test"] == 14 and 0.0 <= probe["accuracy"] <= 1.0
    again = measure_balance(tiny_policy, tiny_clips, ClipLoader.for_policy(tiny_policy), get_label_set("synth"),
                            flip_clips=2, max_new_tokens=4, seed=3)
    assert again == record
