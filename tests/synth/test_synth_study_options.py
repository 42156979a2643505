"""The options of issue #32's RLVR-vs-SFT study (ambiguous_fraction, label_noise, nuisance_strength): off, the
benchmark is the one it was; on, each acts in its splits only, on the share it names, and leaves every other
clip as it was. Specs only, except one small render check."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from r1omni.claims import FACE_CUES, VOICE_CUES, claim_errors, extract_claims
from r1omni.labels import DFEW
from r1omni.synth import SPLITS, SynthConfig, corpus, get_preset, sample_clip_spec
from r1omni.synth.config import AMBIGUITY_SPLITS, NUISANCE_SPLITS
from r1omni.synth.cues import NOUNS
from r1omni.synth.generate import _to_sample, render_clip, split_fingerprint
from r1omni.template import parse_completion, render_completion

NEW_FIELDS = ("ambiguous_fraction", "label_noise", "nuisance_strength")
OLD_META_KEYS = {"carrier", "label_modality", "distractor", "style", "intensity", "cues", "identity",
                 "identity_params", "speaker", "speaker_params", "subtitle_carries_label", "subtitle_emotion",
                 "description"}
TRAIN_CLIPS = 210   # 30 blocks of 7: 180 non-neutral clips


def _specs(config: SynthConfig, split: str, count: int) -> list:
    return [sample_clip_spec(config, split, index, seed=5) for index in range(count)]


def _shown(spec) -> dict[str, str]:
    """The emotion each modality of an ambiguous clip shows."""
    other = "voice" if spec.label_modality == "face" else "face"
    return {spec.label_modality: spec.label, other: spec.distractor}


@pytest.fixture(scope="module")
def default_train():
    return _specs(SynthConfig(), "train", TRAIN_CLIPS)


def test_defaults_leave_the_config_the_specs_and_the_meta_as_they_were():
    default, explicit = SynthConfig(), SynthConfig(**{name: 0.0 for name in NEW_FIELDS})
    assert not set(NEW_FIELDS) & set(default.to_dict())
    assert default.to_dict() == explicit.to_dict()
    for split in SPLITS:
        assert split_fingerprint(default, split, 0) == split_fingerprint(explicit, split, 0)
        for index in range(0, 70, 9):
            spec = sample_clip_spec(default, split, index)
            assert spec == sample_clip_spec(explicit, split, index)
            meta = spec.meta(3)
            assert set(meta) == OLD_META_KEYS, split
            assert json.dumps(meta) == json.dumps(sample_clip_spec(explicit, split, index).meta(3))


@pytest.mark.parametrize("name", NEW_FIELDS)
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fractions_out_of_range_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=rf"SynthConfig\.{name}=.*fraction in \[0, 1\]"):
        SynthConfig(**{name: value})


def test_the_study_presets_are_the_default_and_quick_benchmarks_with_the_options():
    for name, base in (("rl-vs-sft", "default"), ("rl-vs-sft-quick", "quick")):
        study, plain = get_preset(name), get_preset(base)
        assert (study.ambiguous_fraction, study.label_noise, study.nuisance_strength) == (0.2, 0.1, 0.8)
        assert replace(study, ambiguous_fraction=0.0, label_noise=0.0, nuisance_strength=0.0) == plain
        assert SynthConfig.from_dict(study.to_dict()) == study
        assert split_fingerprint(study, "train", 0) != split_fingerprint(plain, "train", 0)


@pytest.fixture(scope="module")
def ambiguous():
    config = SynthConfig(ambiguous_fraction=0.5)
    return config, _specs(config, "train", TRAIN_CLIPS)


def test_about_the_given_share_of_non_neutral_training_clips_is_ambiguous(ambiguous, default_train):
    config, specs = ambiguous
    made = [s for s, before in zip(specs, default_train) if s.carrier == "ambiguous"]
    assert all(before.label != "neutral" for s, before in zip(specs, default_train) if s.carrier == "ambiguous")
    assert 0.35 < len(made) / 180 < 0.65, len(made)
    assert any(s.carrier == "ambiguous" for s in _specs(config, "cold_start", 70))
    for split in set(SPLITS) - set(AMBIGUITY_SPLITS):
        assert _specs(config, split, 70) == _specs(SynthConfig(), split, 70), split


def test_ambiguous_clips_show_two_emotions_and_record_the_raters_probability(ambiguous, default_train):
    config, specs = ambiguous
    face_chosen = []
    for spec, before in zip(specs, default_train):
        if spec.carrier != "ambiguous":
            assert spec == before                       # the clips it leaves alone are as they were
            continue
        shown = _shown(spec)
        assert shown["face"] == before.label            # the face shows the drawn label slot
        assert shown["voice"] not in (shown["face"], "neutral") and spec.label in shown.values()
        assert spec.cues["voice"] != before.cues["voice"] and spec.identity == before.identity
        low, high = config.carrier_intensity
        assert all(low <= spec.intensity[m] <= high for m in ("face", "voice"))
        chosen = spec.intensity[spec.label_modality]
        assert spec.rater_probability == pytest.approx(chosen / sum(spec.intensity.values()), abs=1e-4)
        assert spec.subtitle_emotion is None and not spec.subtitle_carries_label
        meta = spec.meta(3)
        assert meta["carrier"] == "ambiguous" and meta["rater_probability"] == spec.rater_probability
        face_chosen.append(spec.label_modality == "face")
    assert 0.25 < np.mean(face_chosen) < 0.75           # the rater's probabilities are near 1/2


def test_cold_start_reasoning_of_an_ambiguous_clip_names_both_modalities_and_the_label():
    config = SynthConfig(ambiguous_fraction=1.0)
    vocabulary = set(re.findall(r"[a-z'-]+", " ".join(corpus()).lower()))
    clips = [s for s in _specs(config, "cold_start", 28) if s.carrier == "ambiguous"]
    assert len(clips) == 24
    for spec in clips:
        text = spec.reasoning(config.cues_per_modality, config.reasoning_cue_wording)
        claimed = {cue for cue, level in extract_claims(text)}
        assert claimed & {c.name for c in FACE_CUES} and claimed & {c.name for c in VOICE_CUES}
        assert claim_errors(text, spec.cues) == []
        assert NOUNS[spec.label] in text and NOUNS[spec.distractor] in text and "strong" in text
        assert text.rstrip(".").split()[-1] == spec.label
        assert parse_completion(render_completion(text, spec.label), DFEW).label == spec.label
        assert set(re.findall(r"[a-z'-]+", text.lower())) <= vocabulary


def test_label_noise_relabels_about_the_share_of_training_clips_only(default_train):
    config = SynthConfig(label_noise=0.3)
    specs = _specs(config, "train", TRAIN_CLIPS)
    noisy = [s for s in specs if s.true_label is not None]
    assert 0.2 < len(noisy) / TRAIN_CLIPS < 0.4, len(noisy)
    for spec, before in zip(specs, default_train):
        assert replace(spec, label=before.label, true_label=None) == before   # cues and media unchanged
        if spec.true_label is not None:
            assert spec.true_label == before.label != spec.label
    for split in set(SPLITS) - {"train"}:
        assert _specs(config, split, 35) == _specs(SynthConfig(), split, 35), split
    sample = _to_sample(noisy[0], Path("clip.mp4"), with_reasoning=False, config=config)
    assert sample.label == sample.label_raw == noisy[0].label
    assert sample.meta["true_label"] == noisy[0].true_label and sample.meta["noisy_label"] is True


def test_the_background_hue_follows_the_label_in_distribution_only():
    config, labels = SynthConfig(nuisance_strength=1.0), DFEW.labels
    for split in SPLITS:
        specs, plain = _specs(config, split, 70), _specs(SynthConfig(), split, 70)
        assert [replace(s, background=None) for s in specs] == plain
        assert all(s.meta(3)["background"] == s.background for s in specs)
        tied = np.mean([s.background == labels.index(s.label) for s in specs])
        if split in NUISANCE_SPLITS:
            assert tied == 1.0, split
        else:
            assert len({s.background for s in specs}) >= 5 and tied < 0.35, (split, tied)
    partly = [s.background == labels.index(s.label) for s in _specs(SynthConfig(nuisance_strength=0.5), "train", 140)]
    assert 0.4 < np.mean(partly) < 0.75                 # 0.5 + 0.5 / 7 expected


def test_the_hue_follows_the_rated_label_and_ignores_label_noise():
    config = SynthConfig(ambiguous_fraction=0.5, label_noise=0.5, nuisance_strength=1.0)
    specs = _specs(config, "train", 70)
    assert any(s.carrier == "ambiguous" for s in specs) and any(s.true_label for s in specs)
    assert all(s.background == DFEW.labels.index(s.true_label or s.label) for s in specs)


@pytest.mark.parametrize("face_fraction", [1.0, 0.6])
def test_the_tint_changes_the_background_and_leaves_the_face_and_voice_alone(face_fraction):
    config = SynthConfig(nuisance_strength=1.0, id_style=replace(SynthConfig().id_style, face_fraction=face_fraction))
    spec, style = sample_clip_spec(config, "train", 0), config.id_style
    plain_frames, plain_voice = render_clip(replace(spec, background=None), style, config.apex_fraction)
    corners = {}
    for hue in range(len(DFEW.labels)):
        frames, voice = render_clip(replace(spec, background=hue), style, config.apex_fraction)
        assert np.array_equal(voice, plain_voice)
        diff = np.abs(frames.astype(np.int16) - plain_frames)              # (T, H, W, 3)
        corners[hue] = frames[:, :8, :8].reshape(-1, 3).mean(axis=0)
        assert diff[:, :8, :8].mean() > 15                                 # the background is tinted
        if face_fraction == 1.0:
            centre = slice(24, 40)                                         # inside the head at 64 px
            assert diff[:, centre, centre].max() == 0                      # the face's pixels are untouched
    gaps = [np.abs(corners[a] - corners[b]).max() for a in corners for b in corners if a < b]
    assert min(gaps) > 20                                                  # seven hues, told apart
