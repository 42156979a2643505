"""Configs, presets and per-clip specs: validation, balance, determinism, and that the drawn cue
values carry the label (no media involved)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from r1omni.claims import cue_levels
from r1omni.labels import DFEW
from r1omni.synth import PRESETS, SPLITS, StyleConfig, SynthConfig, get_preset, sample_clip_spec


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_cover_every_split(name):
    config = get_preset(name)
    assert set(config.split_sizes) == set(SPLITS)
    assert SynthConfig.from_dict(config.to_dict()) == config
    assert config.id_style.container == ".mp4" and config.ood_style.container != ".mp4"


def test_preset_sizes_match_their_purpose():
    assert PRESETS["default"].split_sizes["cold_start"] == 580
    assert all(n == 14 for n in PRESETS["tiny"].split_sizes.values())
    assert all(35 <= n <= 140 for n in PRESETS["quick"].split_sizes.values())
    get_preset("tiny").split_sizes["train"] = 1  # a copy: the preset itself is untouched
    assert PRESETS["tiny"].split_sizes["train"] == 14


@pytest.mark.parametrize("kwargs, message", [
    ({"split_sizes": {"validation": 3}}, "unknown split"),
    ({"split_sizes": {"train": -1}}, "non-negative"),
    ({"carrier_weights": {"face": 1.0, "smell": 1.0}}, "carrier_weights has unknown key"),
    ({"carrier_intensity": (0.2, 0.5)}, "must lie below"),
    ({"label_hint_fraction": 1.5}, "fraction"),
    ({"cue_noise": 0.5}, "drowns"),
])
def test_config_errors_say_how_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"frame_size_px": 63}, "even"), ({"container": ".gif"}, "use one of"), ({"face_style": "oil"}, "known"),
    ({"sample_rate_hz": 22050}, "48000"),
])
def test_style_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StyleConfig(**kwargs)


def test_with_unknown_preset_name():
    with pytest.raises(KeyError, match="known: default"):
        get_preset("huge")


@pytest.fixture(scope="module")
def specs():
    config = SynthConfig()
    return [sample_clip_spec(config, "train", i, seed=3) for i in range(1400)]


def test_labels_balanced_per_block_of_seven(specs):
    for start in range(0, 70, 7):
        assert sorted(s.label for s in specs[start:start + 7]) == sorted(DFEW.labels)
    assert set(Counter(s.label for s in specs).values()) == {200}
    assert [s.label for s in specs[:7]] != list(DFEW.labels)  # permuted, not cyclic


def test_specs_are_pure_functions_of_seed_split_index(specs):
    config = SynthConfig()
    assert sample_clip_spec(config, "train", 77, seed=3) == specs[77]
    assert sample_clip_spec(config, "train", 77, seed=4) != specs[77]
    assert sample_clip_spec(config, "pretrain", 77, seed=3) != specs[77]


def test_carrier_mix_follows_the_weights(specs):
    counts = Counter(s.carrier for s in specs if s.label != "neutral")
    total = sum(counts.values())
    for carrier, weight in SynthConfig().carrier_weights.items():
        assert abs(counts[carrier] / total - weight) < 0.05, counts
    assert {s.carrier for s in specs if s.label == "neutral"} == {"both"}


def test_resting_modality_is_at_rest_and_conflicts_are_weaker(specs):
    for spec in specs:
        if spec.carrier in ("face", "voice"):
            other = "voice" if spec.carrier == "face" else "face"
            assert spec.intensity[other] == 0.0
        if spec.carrier == "conflict":
            weak = "voice" if spec.label_modality == "face" else "face"
            assert spec.intensity[weak] < spec.intensity[spec.label_modality]
            assert spec.distractor not in (spec.label, "neutral", None)
    rest_share = np.mean([cue_levels(s.cues)["voice" if s.carrier == "face" else "face"] == "neutral"
                          for s in specs if s.carrier in ("face", "voice")])
    assert rest_share > 0.97


@pytest.mark.parametrize("modality", ["face", "voice"])
def test_cue_values_of_the_carrier_predict_the_label(specs, modality):
    def rows(part):
        chosen = [s for s in part if s.label_modality in (modality, "both")]
        return np.array([list(s.cues[modality].values()) for s in chosen]), [s.label for s in chosen]

    x_train, y_train = rows(specs[:1000])
    x_test, y_test = rows(specs[1000:])
    accuracy = LogisticRegression(max_iter=2000).fit(x_train, y_train).score(x_test, y_test)
    assert accuracy > 0.9, accuracy


def test_subtitles_and_hints(specs):
    hinted = [s for s in specs if s.subtitle_carries_label]
    assert all(s.subtitle for s in specs)  # subtitle_fraction defaults to 1
    assert all(s.label != "neutral" for s in hinted)
    assert 0.08 < len(hinted) / len(specs) < 0.18


def test_independent_pretraining_draws_the_voice_apart_from_the_face():
    config = SynthConfig(pretrain_independent_modalities=True)
    pretrain = [sample_clip_spec(config, "pretrain", i) for i in range(700)]
    assert {s.carrier for s in pretrain} == {"independent"}
    assert all(s.label_modality == "face" and s.distractor in DFEW.labels for s in pretrain)
    same = np.mean([s.distractor == s.label for s in pretrain])
    assert 0.08 < same < 0.22  # one chance in seven, as drawn independently
    assert {s.carrier for s in (sample_clip_spec(config, "train", i) for i in range(50))} != {"independent"}
    default = [sample_clip_spec(SynthConfig(), "pretrain", i) for i in range(50)]
    assert "independent" not in {s.carrier for s in default}


def test_test_id_draws_held_out_identities():
    config = SynthConfig()
    train = {sample_clip_spec(config, "train", i).identity for i in range(300)}
    test = {sample_clip_spec(config, "test_id", i).identity for i in range(100)}
    ood = {sample_clip_spec(config, "test_ood", i).identity for i in range(10)}
    assert train and test and not train & test
    assert all(name.startswith("ood-") for name in ood)


@pytest.mark.parametrize("share", [0.0, 1 / 3, 0.5, 1.0])
def test_pretrain_ood_share_is_exact_on_every_prefix(share):
    config = SynthConfig(pretrain_ood_share=share)
    flags = [config.is_ood_pretrain_clip(i) for i in range(300)]
    for n in (3, 30, 300):
        assert sum(flags[:n]) == int(n * share + 1e-6)
    styles = {sample_clip_spec(config, "pretrain", i).style for i in range(30)}
    assert styles == ({"id"} if share == 0 else {"ood"} if share == 1 else {"id", "ood"})
    # Emotion-labelled splits never mix styles.
    assert {sample_clip_spec(config, "train", i).style for i in range(30)} == {"id"}


def test_ood_pretraining_never_shows_test_ood_identities():
    config = SynthConfig(pretrain_ood_share=0.5)
    pretrain = [sample_clip_spec(config, "pretrain", i) for i in range(400)]
    seen = {s.identity for s in pretrain if s.style == "ood"} | {s.speaker for s in pretrain if s.style == "ood"}
    test = [sample_clip_spec(config, "test_ood", i) for i in range(100)]
    unseen = {s.identity for s in test} | {s.speaker for s in test}
    assert seen and unseen and not seen & unseen
    # The OOD validation split has identities of its own too, apart from both.
    validation = [sample_clip_spec(config, "val_ood", i) for i in range(100)]
    own = {s.identity for s in validation} | {s.speaker for s in validation}
    assert own and not own & (seen | unseen)


def test_random_pretraining_subtitles_change_only_the_ordinary_pretraining_subtitles():
    from dataclasses import replace

    from r1omni.synth.text import HINT_SUBTITLES, NEUTRAL_SUBTITLES, corpus_words

    base = get_preset("default")
    reading = replace(base, pretrain_random_subtitles=1.0)
    sentences = set(NEUTRAL_SUBTITLES) | {s for group in HINT_SUBTITLES.values() for s in group}
    randomised = 0
    for split in ("pretrain", "train", "test_id"):
        for index in range(60):
            before, after = sample_clip_spec(base, split, index), sample_clip_spec(reading, split, index)
            assert replace(after, subtitle=before.subtitle) == before       # nothing else moves
            if split != "pretrain" or before.subtitle_emotion is not None:
                assert after.subtitle == before.subtitle                    # hints and other splits stay
            else:
                assert after.subtitle not in sentences
                assert set(after.subtitle.rstrip(".").lower().split()) <= {w.lower() for w in corpus_words()}
                randomised += 1
                meta = after.meta(3, base.pretrain_tasks)
                if meta["task"] == "subtitle":
                    assert meta["answer"] == f'The subtitle reads: "{after.subtitle}"'
    assert randomised > 15
    assert "pretrain_random_subtitles" not in base.to_dict()             # the default keeps the digest
    assert reading.to_dict()["pretrain_random_subtitles"] == 1.0
    assert SynthConfig.from_dict(reading.to_dict()) == reading
    assert not {"happy", "sadness", "anger", "fear"} & {w.lower() for w in corpus_words()}
