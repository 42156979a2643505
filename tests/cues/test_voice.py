"""The vocal cue measurements against synthesised tones with known pitch, level and timing, and against the
generated benchmark's true cue levels."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from r1omni.claims import cue_levels
from r1omni.cues import VoiceReference, measure_voice, track_pitch, voice_cues
from r1omni.media import load_audio, write_clip
from r1omni.synth.cues import expression
from r1omni.synth.voice import sample_speaker, synthesize_voice

RATE = 16000


def tone(f0_hz: float, seconds: float = 1.0, dbfs: float = -20.0, glide_semitones: float = 0.0) -> np.ndarray:
    """A harmonic tone (5 harmonics, 1/k) whose F0 glides linearly by ``glide_semitones``, at RMS ``dbfs``."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = f0_hz * 2 ** (glide_semitones * t / seconds / 12)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    noise = 1e-4 * np.random.default_rng(0).standard_normal(len(t))
    return (wave / np.sqrt(np.mean(wave ** 2)) * 10 ** (dbfs / 20) + noise).astype(np.float32)


@pytest.mark.parametrize("f0_hz", [80.0, 120.0, 200.0, 310.0, 450.0])
def test_pitch_tracker_finds_the_fundamental_not_an_octave(f0_hz):
    f0, _ = track_pitch(tone(f0_hz))
    voiced = f0[~np.isnan(f0)]
    assert len(voiced) > 0.8 * len(f0)
    assert abs(12 * np.log2(np.median(voiced) / f0_hz)) < 0.3   # within a third of a semitone


def test_silence_and_noise_are_unvoiced():
    rng = np.random.default_rng(1)
    for wave in (np.zeros(RATE, np.float32), (0.1 * rng.standard_normal(RATE)).astype(np.float32)):
        f0, _ = track_pitch(wave)
        assert np.isnan(f0).mean() > 0.9
        assert "pitch" not in voice_cues(wave)


def test_levels_follow_pitch_loudness_and_contour_in_the_right_order():
    reference = VoiceReference(f0_hz=160.0, level_dbfs=-23.0)
    low, mid, high = (voice_cues(tone(f), reference) for f in (105.0, 160.0, 245.0))
    assert cue_levels(low)["pitch"] == "low" and cue_levels(mid)["pitch"] == "medium"
    assert cue_levels(high)["pitch"] == "high"
    soft, loud = (voice_cues(tone(160.0, dbfs=d), reference) for d in (-36.0, -12.0))
    assert cue_levels(soft)["loudness"] == "soft" and cue_levels(loud)["loudness"] == "loud"
    rising, falling = (voice_cues(tone(160.0, glide_semitones=g), reference) for g in (6.0, -6.0))
    assert cue_levels(rising)["contour"] == "rising" and cue_levels(falling)["contour"] == "falling"
    assert measure_voice(tone(160.0, glide_semitones=6.0)).f0_slope_semitones == pytest.approx(6.0, abs=0.7)


def test_other_sample_rates_are_refused():
    with pytest.raises(ValueError, match="16 kHz"):
        track_pitch(np.zeros(8000, np.float32), sample_rate_hz=8000)


def test_benchmark_voices_measure_at_their_true_levels_mostly():
    """The extractor's accuracy on generated voices (its ceiling for the grounding reward elsewhere); the
    figures per cue over the benchmark's splits are in the README."""
    rng = np.random.default_rng(0)
    hits = {"pitch": 0, "loudness": 0, "rate": 0}
    counts = dict.fromkeys(hits, 0)
    for label in ("happy", "sad", "angry", "fear", "neutral") * 4:
        true = expression(label, rng.uniform(0.75, 1.0), "voice", rng, noise=0.06)
        speaker = sample_speaker(rng, "buzz")
        reference = VoiceReference(f0_hz=160.0 * 2 ** (speaker["reference_semitones"] / 12))
        measured = voice_cues(synthesize_voice(true, speaker, rng, duration_seconds=2.0), reference)
        true_levels, measured_levels = cue_levels({"voice": true}), cue_levels(measured)
        for cue in hits:
            if cue in measured:
                counts[cue] += 1
                hits[cue] += measured_levels[cue] == true_levels[cue]
    for cue in hits:
        assert counts[cue] >= 15 and hits[cue] / counts[cue] >= 0.75, (cue, hits[cue], counts[cue])


ESPEAK = shutil.which("espeak-ng")


@pytest.mark.skipif(ESPEAK is None and not os.environ.get("CI"),
                    reason="espeak-ng is not installed (.ci/run installs it; apt-get install espeak-ng)")
def test_real_speech_at_two_prosody_settings_measures_in_the_right_order(tmp_path):
    """Speech no one here made (espeak-ng's formant synthesiser), low and soft vs high and loud, muxed into
    an mp4 as a user's clip would be: pitch and loudness come out in that order."""
    measured = {}
    for name, pitch, amplitude in (("low_soft", 15, 40), ("high_loud", 85, 180)):
        wav = tmp_path / f"{name}.wav"
        subprocess.run([ESPEAK or "espeak-ng", "-v", "en-us", "-p", str(pitch), "-a", str(amplitude), "-w", str(wav),
                        "The meeting moved to Thursday morning at nine o'clock."], check=True)
        speech = load_audio(wav).waveform
        frames = np.full((8, 64, 64, 3), 128, np.uint8)
        clip = write_clip(tmp_path / f"{name}.mp4", frames, 8 / (len(speech) / RATE), speech)
        measured[name] = (measure_voice(load_audio(clip).waveform), voice_cues(load_audio(clip).waveform))
    (low, low_cues), (high, high_cues) = measured["low_soft"], measured["high_loud"]
    assert high.median_f0_hz > 1.3 * low.median_f0_hz
    assert high.level_dbfs > low.level_dbfs + 6
    assert high_cues["pitch"] > low_cues["pitch"] and high_cues["loudness"] > low_cues["loudness"]
    order = {"pitch": ("low", "medium", "high"), "loudness": ("soft", "moderate", "loud")}
    for cue, levels in order.items():
        assert levels.index(cue_levels(high_cues)[cue]) > levels.index(cue_levels(low_cues)[cue]), cue


def test_the_tracker_holds_one_block_of_frames_not_the_whole_soundtrack(monkeypatch):
    """D8: the whole soundtrack as overlapping float64 frames plus spectra cost ~4 MB per second (a 10-minute
    wav: +2.4 GB). In blocks, 2 minutes stay under 60 MB of numpy allocations, with the same numbers."""
    import tracemalloc

    from r1omni.cues import voice

    waveform = np.tile(np.concatenate([tone(140, 2.0), np.zeros(RATE, np.float32)]), 40)   # 120 s
    tracemalloc.start()
    try:
        f0, level = track_pitch(waveform)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 60e6, f"{peak_bytes / 1e6:.0f} MB"
    monkeypatch.setattr(voice, "BLOCK_FRAMES", 10**9)            # everything in one block
    whole_f0, whole_level = track_pitch(waveform)
    assert np.array_equal(f0, whole_f0, equal_nan=True) and np.array_equal(level, whole_level)
    short = waveform[:3 * RATE + 333]
    whole_short = track_pitch(short)
    monkeypatch.setattr(voice, "BLOCK_FRAMES", 7)                # blocks that do not divide the frames
    for blocked, whole in zip(track_pitch(short), whole_short):
        assert np.array_equal(blocked, whole, equal_nan=True)
