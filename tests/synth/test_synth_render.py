"""The face renderer and the voice synthesiser in isolation: shapes, determinism, and that the cues
move the pixels and the sound in the intended direction."""

from __future__ import annotations

import numpy as np
import pytest

from r1omni.synth import PROTOTYPES, render_face, synthesize_voice
from r1omni.synth.face import expression_course, sample_identity
from r1omni.synth.voice import sample_speaker, syllable_schedule


def _face(label: str, seed: int = 0, **kwargs) -> np.ndarray:
    identity = sample_identity(np.random.default_rng(100), kwargs.get("face_style", "soft"))
    return render_face(PROTOTYPES[label]["face"], identity, np.random.default_rng(seed), **kwargs)


def _voice(cues: dict, seed: int = 0, **kwargs) -> np.ndarray:
    speaker = sample_speaker(np.random.default_rng(100), kwargs.get("voice_style", "buzz"))
    return synthesize_voice(cues, speaker, np.random.default_rng(seed), **kwargs)


def test_expression_course_rises_from_onset_to_apex():
    course = expression_course(8, apex_fraction=0.4)  # (8,)
    assert course[0] == pytest.approx(0.1) and np.all(np.diff(course) >= 0)
    assert np.all(course[3:] == 1.0) and course[2] < 1.0


def test_render_face_shape_and_determinism():
    frames = _face("happy", frame_size_px=48, num_frames=5)
    assert frames.shape == (5, 48, 48, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, _face("happy", frame_size_px=48, num_frames=5))
    assert not np.array_equal(frames, _face("happy", seed=1, frame_size_px=48, num_frames=5))


def test_expression_grows_over_the_clip():
    # Same nuisance draws (same rng seed), different expression: the gap widens towards the apex.
    neutral = _face("neutral").astype(np.float64)
    for label in ("happy", "surprise", "disgust"):
        gap = np.abs(_face(label).astype(np.float64) - neutral).mean(axis=(1, 2, 3))  # (T,)
        assert gap[-1] > 3 * gap[0], (label, gap)


@pytest.mark.parametrize("cue, low, high, region", [
    ("mouth_curve", -0.9, 0.9, "lower"), ("mouth_open", 0.1, 0.9, "lower"),
    ("brow_raise", -0.9, 0.9, "upper"), ("brow_tilt", -0.9, 0.9, "upper"), ("eye_open", 0.15, 0.95, "upper"),
])
def test_each_facial_cue_changes_bold_pixels_in_its_region(cue, low, high, region):
    # Same nuisance draws, one cue changed: only that feature's pixels differ, and many differ a lot.
    identity = sample_identity(np.random.default_rng(100), "soft")
    frames = {}
    for value in (low, high):
        cues = {**PROTOTYPES["neutral"]["face"], cue: value}
        frames[value] = render_face(cues, identity, np.random.default_rng(0))[-1].astype(np.float64)
    diff = np.abs(frames[high] - frames[low]).max(axis=-1)  # (H, W)
    rows = np.flatnonzero(diff.max(axis=1) > 0)
    centre_row = (rows.min() + rows.max()) / 2
    assert (centre_row > 36) if region == "lower" else (centre_row < 34), rows
    assert (diff > 40).sum() >= 25, (diff > 40).sum()


def test_render_face_needs_every_cue():
    with pytest.raises(KeyError, match="mouth_curve"):
        render_face({}, sample_identity(np.random.default_rng(0), "soft"), np.random.default_rng(0))


def _pitch_hz(wave: np.ndarray, sample_rate_hz: int = 16000) -> float:
    """Median F0 of the loud 40 ms frames by autocorrelation of the low-passed signal."""
    low = np.convolve(wave, np.ones(16) / 16, mode="same")
    frames = np.lib.stride_tricks.sliding_window_view(low, 640)[::160]  # (F, 640)
    energy = (frames**2).mean(axis=1)
    estimates = []
    for frame in frames[energy > 0.25 * energy.max()]:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[639:]
        lo, hi = sample_rate_hz // 450, sample_rate_hz // 70
        estimates.append(sample_rate_hz / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(estimates))


def test_voice_shape_range_and_determinism():
    wave = _voice(PROTOTYPES["happy"]["voice"], duration_seconds=0.5, sample_rate_hz=24000)
    assert wave.shape == (12000,) and wave.dtype == np.float32 and np.abs(wave).max() <= 1.0
    assert np.array_equal(wave, _voice(PROTOTYPES["happy"]["voice"], duration_seconds=0.5, sample_rate_hz=24000))


def test_prosody_cues_move_the_sound():
    neutral = dict(PROTOTYPES["neutral"]["voice"])
    high, low = _voice({**neutral, "pitch": 0.8}), _voice({**neutral, "pitch": -0.8})
    assert _pitch_hz(high) > 1.6 * _pitch_hz(low)  # 11 semitones apart in theory
    loud, soft = _voice({**neutral, "loudness": 0.95}), _voice({**neutral, "loudness": 0.1})
    assert np.sqrt(np.mean(loud**2)) > 4 * np.sqrt(np.mean(soft**2))
    rng = np.random.default_rng(0)
    assert len(syllable_schedule(0.95, 0.0, 1.0, rng)) > 2 * len(syllable_schedule(0.05, 0.0, 1.0, rng))


def test_speakers_vary_less_than_emotions():
    neutral = PROTOTYPES["neutral"]["voice"]
    speakers = [sample_speaker(np.random.default_rng(i), "buzz")["reference_semitones"] for i in range(50)]
    assert max(speakers) - min(speakers) < 5.0  # +-2.5 semitones
    assert _pitch_hz(_voice(PROTOTYPES["sad"]["voice"])) < _pitch_hz(_voice(neutral)) < \
        _pitch_hz(_voice(PROTOTYPES["surprise"]["voice"]))


def test_a_small_face_sits_off_centre_on_a_plain_wall(tmp_path):
    from dataclasses import replace

    from r1omni.media import sample_frames
    from r1omni.schema import read_samples
    from r1omni.synth import SynthConfig, generate_benchmark
    from r1omni.synth.config import StyleConfig
    from r1omni.synth.generate import _style_settings, split_fingerprint

    small = StyleConfig(frame_size_px=128, face_fraction=0.4)
    config = SynthConfig(split_sizes={"test_id": 4}, id_style=small)
    samples = read_samples(generate_benchmark(tmp_path, config, progress=False)["test_id"])
    for sample in samples:
        frames = sample_frames(sample.video, 2).frames.astype(np.float32)                   # (2, 128, 128, 3)
        busy = frames.std(axis=(0, 3)) > 12                                 # (128, 128): the face's detail
        rows, cols = np.nonzero(busy)
        assert cols.min() >= 128 // 2 - 40 and cols.mean() > 64                             # right half
        assert cols.max() - cols.min() <= 0.4 * 128 + 4 and rows.max() - rows.min() <= 0.4 * 128 + 4
    # A whole-frame face keeps the fingerprint benchmarks had before the option existed; a small one changes it.
    plain = SynthConfig(split_sizes={"test_id": 4})
    assert "face_fraction" not in _style_settings(plain.id_style)
    assert split_fingerprint(plain, "test_id", 0) != split_fingerprint(replace(plain, id_style=small), "test_id", 0)
    with pytest.raises(ValueError, match="face_fraction"):
        StyleConfig(face_fraction=0.1)
