"""Prosodic voices synthesised with numpy: the vocal cues of :mod:`r1omni.synth.cues` made audible.

No speech engine and no words: a harmonic source (a band-limited sawtooth-like pulse train whose
harmonics roll off with ``k ** -tilt``) follows an F0 contour; each harmonic is weighted by three
formant resonances of the syllable's vowel; syllables get smooth envelopes, consonant-like noise
bursts at their onsets and pauses between them. The cues map to:

- pitch: F0 level, ``+-7`` semitones around the speaker's reference (speakers vary by only
  ``+-2.5`` semitones, so the emotion, not the speaker, decides whether a voice sounds high);
- pitch_range: size of the per-syllable pitch accents; contour: linear rise or fall over the clip;
- rate: syllables per second (2.5 .. 7.5); pauses: each syllable slot is silent with probability
  ``0.6 * pauses``;
- loudness: RMS level of the voiced part (-34 .. -12 dBFS);
- tremor: 5-7 Hz modulation of F0 and amplitude; breathiness: weaker harmonics plus aspiration noise;
  harshness: flatter spectral tilt, fast F0 jitter, subharmonic modulation and soft saturation.

Two styles: "buzz" (ID: all harmonics, one vowel set, faint white background noise) and "reed"
(OOD: odd harmonics dominate, other vowels with narrower resonances, mains hum and brown noise).
Array letters: S samples, V voiced samples, K harmonics, C control frames (200 per second).
This module makes waveforms; it does not choose cue values or write files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from r1omni.claims import VOICE_CUES

__all__ = ["VoiceStyle", "VOICE_STYLES", "REFERENCE_F0_HZ", "sample_speaker", "synthesize_voice",
           "syllable_schedule"]

REFERENCE_F0_HZ = 150.0
PITCH_SPAN_SEMITONES = 7.0
CONTOUR_SPAN_SEMITONES = 8.0
_CONTROL_RATE_HZ = 200
_MAX_HARMONIC_HZ = 5000.0


@dataclass(frozen=True)
class VoiceStyle:
    """Timbre and recording conditions of one style."""

    even_harmonic_gain: float
    """Gain of even harmonics relative to odd ones (1 for a sawtooth-like pulse, < 1 for a reed)."""
    base_tilt: float
    """Spectral roll-off exponent of the source at neutral voice quality."""
    vowels_hz: tuple[tuple[float, float, float], ...]
    """Formant frequencies (F1, F2, F3) of the vowels syllables draw from."""
    bandwidths_hz: tuple[float, float, float]
    """Formant bandwidths."""
    noise: str
    """Background noise kind: "white" or "hum" (mains hum plus brown noise)."""
    noise_dbfs: tuple[float, float]
    """Range of the background noise RMS level."""


VOICE_STYLES: dict[str, VoiceStyle] = {
    "buzz": VoiceStyle(
        even_harmonic_gain=1.0,
        base_tilt=1.1,
        vowels_hz=((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (440, 1020, 2240)),
        bandwidths_hz=(90, 110, 170),
        noise="white",
        noise_dbfs=(-54, -44),
    ),
    "reed": VoiceStyle(
        even_harmonic_gain=0.25,
        base_tilt=0.9,
        vowels_hz=((660, 1700, 2400), (390, 1990, 2550), (300, 870, 2240), (640, 1190, 2390), (490, 1350, 1690)),
        bandwidths_hz=(60, 80, 120),
        noise="hum",
        noise_dbfs=(-48, -40),
    ),
}


def sample_speaker(rng: np.random.Generator, voice_style: str) -> dict[str, Any]:
    """One speaker of a style: reference pitch, vocal-tract length, voice quality and level."""
    if voice_style not in VOICE_STYLES:
        raise KeyError(f"unknown voice style {voice_style!r}; known: {sorted(VOICE_STYLES)}")
    return {
        "reference_semitones": round(float(rng.uniform(-2.5, 2.5)), 3),
        "formant_scale": round(float(rng.uniform(0.9, 1.1)), 3),
        "tilt_offset": round(float(rng.uniform(-0.12, 0.12)), 3),
        "gain_db": round(float(rng.uniform(-1.5, 1.5)), 3),
        "tremor_hz": round(float(rng.uniform(5.0, 7.0)), 3),
    }


def syllable_schedule(rate: float, pauses: float, duration_seconds: float,
                      rng: np.random.Generator) -> list[tuple[float, float]]:
    """(start, end) seconds of the voiced syllables: ``2.5 + 5 * rate`` slots per second, each left
    silent with probability ``0.6 * pauses`` (never the first), the voiced part 70% of a slot."""
    period = 1.0 / (2.5 + 5.0 * rate)
    voiced = min(0.7 * period, 0.3)
    t = rng.uniform(0.02, 0.08)
    spans = []
    while t + voiced < duration_seconds - 0.02:
        if not spans or rng.random() >= 0.6 * pauses:
            spans.append((t, t + voiced))
        t += period * rng.uniform(0.92, 1.08)
    return spans


def _resonance(freq_hz: np.ndarray, centres_hz: np.ndarray, bandwidths_hz: tuple[float, float, float]) -> np.ndarray:
    """Sum of three Lorentzian formant peaks at ``freq_hz``; ``centres_hz`` (..., 3) broadcasts."""
    gain = np.full(freq_hz.shape, 0.15)
    for i, (weight, bandwidth) in enumerate(zip((1.0, 0.6, 0.3), bandwidths_hz)):
        gain += weight / (1.0 + ((freq_hz - centres_hz[..., i]) / (bandwidth / 2.0)) ** 2)
    return gain


def _background(kind: str, num_samples: int, sample_rate_hz: int, level_dbfs: float,
                rng: np.random.Generator) -> np.ndarray:
    if kind == "white":
        noise = rng.standard_normal(num_samples)
        noise = 0.5 * (noise + np.roll(noise, 1))  # gentle low-pass
    elif kind == "hum":
        t = np.arange(num_samples) / sample_rate_hz
        mains_hz = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(np.sin(2 * np.pi * mains_hz * h * t + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3, 5))
        brown = np.cumsum(rng.standard_normal(num_samples))
        brown -= np.convolve(brown, np.ones(401) / 401, mode="same")  # remove the drift
        noise = hum / np.std(hum) + 0.8 * brown / (np.std(brown) + 1e-9)
    else:
        raise ValueError(f"unknown background noise kind {kind!r}")
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (level_dbfs / 20)


def synthesize_voice(cues: dict[str, float], speaker: dict[str, Any], rng: np.random.Generator, *,
                     duration_seconds: float = 1.0, sample_rate_hz: int = 16000,
                     voice_style: str = "buzz") -> np.ndarray:
    """A mono waveform (S,) float32 in [-1, 1] of a wordless voice showing ``cues``.

    ``rng`` draws the syllable timing, vowels, accents and noise; the same state gives the same sound.
    """
    missing = [c.name for c in VOICE_CUES if c.name not in cues]
    if missing:
        raise KeyError(f"synthesize_voice: cue value(s) missing: {missing}")
    style = VOICE_STYLES[voice_style]
    sr = sample_rate_hz
    num_samples = int(round(duration_seconds * sr))
    t = np.arange(num_samples) / sr  # (S,)
    spans = syllable_schedule(cues["rate"], cues["pauses"], duration_seconds, rng)

    # Per syllable: envelope, accent bump, vowel, onset burst.
    envelope = np.zeros(num_samples)  # (S,)
    accent = np.zeros(num_samples)  # (S,) in [-0.4, 1]
    vowel_index = np.zeros(num_samples, np.int64)  # (S,)
    bursts = np.zeros(num_samples)  # (S,)
    for start, end in spans:
        i0, i1 = int(start * sr), min(int(end * sr), num_samples)
        progress = (t[i0:i1] - start) / (end - start)  # 0..1 within the syllable
        attack = np.clip(progress / 0.15, 0, 1)
        release = np.clip((1 - progress) / 0.35, 0, 1)
        envelope[i0:i1] = np.sin(0.5 * np.pi * attack) * np.sin(0.5 * np.pi * release)
        accent[i0:i1] = rng.uniform(-0.4, 1.0) * np.sin(np.pi * progress)
        vowel_index[i0:i1] = rng.integers(len(style.vowels_hz))
        burst_len = int(rng.uniform(0.01, 0.025) * sr)
        b0 = max(0, i0 - burst_len // 2)
        bursts[b0:b0 + burst_len] = np.hanning(len(bursts[b0:b0 + burst_len]))

    # F0 contour in semitones around the reference.
    range_semitones = 0.5 + 6.0 * cues["pitch_range"]
    tremor = cues["tremor"]
    harsh = cues["harshness"]
    breath = cues["breathiness"]
    jitter = np.convolve(rng.standard_normal(num_samples), np.ones(80) / np.sqrt(80), mode="same")  # (S,)
    semitones = (speaker["reference_semitones"]
                 + PITCH_SPAN_SEMITONES * cues["pitch"]
                 + CONTOUR_SPAN_SEMITONES * cues["contour"] * (t / duration_seconds - 0.5)
                 + range_semitones * accent
                 + 1.6 * tremor * np.sin(2 * np.pi * speaker["tremor_hz"] * t)
                 + (0.05 + 0.5 * harsh) * jitter)  # (S,)
    f0_hz = REFERENCE_F0_HZ * 2.0 ** (semitones / 12.0)  # (S,)
    phase = 2 * np.pi * np.cumsum(f0_hz) / sr  # (S,)

    voiced = np.flatnonzero(envelope > 0)
    wave = np.zeros(num_samples)  # (S,)
    if voiced.size:
        num_harmonics = int(min(_MAX_HARMONIC_HZ, 0.45 * sr) // f0_hz[voiced].min())
        k = np.arange(1, num_harmonics + 1)[:, None]  # (K, 1)
        tilt = style.base_tilt + speaker["tilt_offset"] + 0.5 * breath - 0.7 * harsh
        source = k.astype(np.float64) ** -tilt * np.where(k % 2 == 0, style.even_harmonic_gain, 1.0)  # (K, 1)
        # Formant gains at the control rate, held per control frame.
        hop = sr // _CONTROL_RATE_HZ
        control = voiced[::hop]  # (C,)
        formants = np.asarray(style.vowels_hz)[vowel_index[control]] * speaker["formant_scale"]  # (C, 3)
        harmonic_hz = k * f0_hz[control][None, :]  # (K, C)
        gains = source * _resonance(harmonic_hz, formants[None, :, :], style.bandwidths_hz)  # (K, C)
        gains[harmonic_hz > min(_MAX_HARMONIC_HZ, 0.45 * sr)] = 0.0
        held = np.minimum(np.arange(voiced.size) // hop, control.size - 1)  # (V,)
        # sin(k x) by the recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x): no (K, V) arrays.
        x = phase[voiced]  # (V,)
        twice_cos = 2.0 * np.cos(x)
        previous, current = np.zeros_like(x), np.sin(x)
        voiced_wave = np.zeros_like(x)  # (V,)
        for row in gains:
            voiced_wave += row[held] * current
            previous, current = current, twice_cos * current - previous
        subharmonic = 1.0 + 0.4 * harsh * np.sin(0.5 * phase[voiced])  # roughness (period doubling)
        wave[voiced] = voiced_wave * subharmonic
        wave /= np.sqrt(np.mean(wave[voiced] ** 2)) + 1e-12
        drive = 1.0 + 3.0 * harsh
        wave = np.tanh(drive * wave) / np.tanh(drive)

    amplitude = envelope * (1.0 + 0.5 * tremor * np.sin(2 * np.pi * speaker["tremor_hz"] * t + 0.7))  # (S,)
    aspiration = rng.standard_normal(num_samples)
    aspiration = aspiration - 0.7 * np.roll(aspiration, 1)  # tilt towards high frequencies
    speech = ((1.0 - 0.55 * breath) * wave * amplitude
              + (0.05 + 0.45 * breath) * aspiration * envelope
              + 0.35 * aspiration * bursts)  # (S,)
    active = envelope > 0.05
    level_dbfs = -34.0 + 22.0 * cues["loudness"] + speaker["gain_db"]
    if active.any():
        speech *= 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(speech[active] ** 2)) + 1e-12)
    noise = _background(style.noise, num_samples, sr, rng.uniform(*style.noise_dbfs), rng)
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32)
