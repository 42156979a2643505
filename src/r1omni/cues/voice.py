"""Vocal cues measured on any 16 kHz waveform: pitch level, range and contour, loudness, rate, pauses.

The values are in the cue space of :mod:`r1omni.claims` (the ranges the claim checker cuts into
levels), measured against a stated :class:`VoiceReference`: the speaker's usual pitch and level.
The default reference is the generated benchmark's (160 Hz, -23 dBFS: the median F0 and level of its
voices at medium pitch and loudness, measured on its training split with this tracker);
for real speech pass the speaker's own (e.g. the median over their other recordings), or the
corpus's.

The pitch tracker is a plain normalised-autocorrelation tracker (40 ms frames, 10 ms hop, 60-500 Hz):
a frame is voiced when its autocorrelation peak is strong and its energy stands above the clip's
noise floor; the lag chosen is the shortest one whose peak comes within 10 % of the best, which
avoids the octave-too-low errors of taking the global maximum. Syllables are runs of loud frames
(12 dB above the clip's floor); the speaking rate comes from the spacing of consecutive syllable
onsets, pauses from the share of the clip that is loud (voiced syllables fill ~77 % of a clip
without pauses in the benchmark's voices, ~28 % with the most; :mod:`r1omni.synth.voice`).
Tremor, breathiness and harshness are not measured (claims about them stay "not checkable").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VoiceReference", "VoiceMeasures", "track_pitch", "measure_voice", "voice_cues"]

_SAMPLE_RATE_HZ = 16000
_FRAME = 640     # 40 ms
_HOP = 160       # 10 ms
_MIN_F0_HZ, _MAX_F0_HZ = 60.0, 500.0
BLOCK_FRAMES = 1000
"""Frames (10 s of audio) analysed at once by :func:`track_pitch`: what bounds its memory (~40 MB)."""


@dataclass(frozen=True)
class VoiceReference:
    """What "medium" means for one speaker: their usual pitch and speaking level."""

    f0_hz: float = 160.0
    level_dbfs: float = -23.0


@dataclass(frozen=True)
class VoiceMeasures:
    """Raw measurements of one waveform (None where the clip has too little voice to tell)."""

    voiced_seconds: float
    median_f0_hz: float | None
    f0_spread_semitones: float | None     # 10th-90th percentile spread after removing the linear trend
    f0_slope_semitones: float | None      # fitted change over the voiced span
    level_dbfs: float | None              # RMS of the voiced frames
    syllables_per_second: float | None    # from the median spacing of consecutive onsets
    loud_share: float                     # share of frames 12 dB above the clip's floor


def _num_frames(num_samples: int) -> int:
    return 1 + max(0, (num_samples - _FRAME) // _HOP)


def _frames(waveform: np.ndarray, first: int, count: int) -> np.ndarray:
    """Frames ``first .. first + count - 1`` of the waveform as float64, the last zero-padded to a frame."""
    segment = waveform[first * _HOP:(first + count - 1) * _HOP + _FRAME].astype(np.float64)
    padded = np.pad(segment, (0, max(0, _FRAME - len(segment))))
    index = np.arange(_FRAME)[None, :] + _HOP * np.arange(count)[:, None]
    return padded[index]  # (F, FRAME)


def _analyse(frames: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, ...]:
    """Per frame: RMS level (dBFS), autocorrelation peak, whether a strong peak exists, and the lag of the
    shortest strong one."""
    frames = frames - frames.mean(axis=1, keepdims=True)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)  # (F,) dBFS
    spectrum = np.fft.rfft(frames * np.hanning(_FRAME), n=2 * _FRAME)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2)[:, :_FRAME]  # (F, FRAME)
    autocorr /= autocorr[:, :1] + 1e-12
    lo, hi = int(sample_rate_hz / _MAX_F0_HZ), int(sample_rate_hz / _MIN_F0_HZ)
    window = autocorr[:, lo:hi]  # (F, L)
    best = window.max(axis=1)  # (F,)
    is_peak = (window[:, 1:-1] >= window[:, :-2]) & (window[:, 1:-1] >= window[:, 2:])
    near_best = is_peak & (window[:, 1:-1] >= 0.9 * best[:, None])
    lag = lo + 1 + np.argmax(near_best, axis=1)  # the shortest strong lag
    return level, best, near_best.any(axis=1), lag


def track_pitch(waveform: np.ndarray, sample_rate_hz: int = _SAMPLE_RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """F0 per 10 ms frame (Hz, NaN where unvoiced) and each frame's RMS level (dBFS).

    Frames are analysed :data:`BLOCK_FRAMES` at a time: their float64 copies and spectra take ~40 kB
    per 10 ms, so a 10-minute soundtrack analysed at once would hold ~2.4 GB. Each frame is computed
    alone, so the blocks give the same numbers as one pass; only the voicing threshold needs the
    whole clip's levels, and those are kept.
    """
    if sample_rate_hz != _SAMPLE_RATE_HZ:
        raise ValueError(f"track_pitch expects 16 kHz audio (got {sample_rate_hz} Hz); resample when decoding")
    total = _num_frames(len(waveform))
    parts = [_analyse(_frames(waveform, first, min(BLOCK_FRAMES, total - first)), sample_rate_hz)
             for first in range(0, total, BLOCK_FRAMES)]
    level, best, has_peak, lag = (np.concatenate(column) for column in zip(*parts))  # (F,) each
    voiced = (best > 0.45) & _loud(level) & has_peak
    return np.where(voiced, sample_rate_hz / lag, np.nan), level


def _loud(level: np.ndarray) -> np.ndarray:
    """Frames 12 dB above the clip's floor (its 10th percentile), or within 6 dB of its peak when the
    clip has no quiet part."""
    return level > min(np.percentile(level, 10) + 12, level.max() - 6)


def _syllables(loud: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of loud frames at least 40 ms long."""
    edges = np.diff(np.concatenate([[0], loud.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(s, e) for s, e in zip(starts, ends) if e - s >= 4]


def measure_voice(waveform: np.ndarray, sample_rate_hz: int = _SAMPLE_RATE_HZ) -> VoiceMeasures:
    """Raw pitch, level and timing measurements of a mono waveform."""
    f0, level = track_pitch(waveform, sample_rate_hz)
    voiced = ~np.isnan(f0)
    seconds = _HOP / sample_rate_hz
    loud = _loud(level)
    if voiced.sum() < 5:
        return VoiceMeasures(float(voiced.sum() * seconds), None, None, None, None, None, float(loud.mean()))
    semitones = 12 * np.log2(f0[voiced] / 100.0)
    times = np.flatnonzero(voiced) * seconds
    slope, intercept = np.polyfit(times, semitones, 1)
    detrended = semitones - (slope * times + intercept)
    spread = float(np.percentile(detrended, 90) - np.percentile(detrended, 10))
    level_dbfs = float(10 * np.log10(np.mean(10 ** (level[voiced] / 10))))
    syllables = _syllables(loud)
    rate = None
    if len(syllables) >= 3:   # consecutive onsets one slot apart: the shortest gaps
        gaps = np.diff([start for start, _ in syllables]) * seconds
        rate = 1.0 / float(np.median(gaps[gaps < 1.5 * gaps.min()]))
    return VoiceMeasures(float(voiced.sum() * seconds), float(np.median(f0[voiced])), spread,
                         float(slope * (times[-1] - times[0])), level_dbfs, rate, float(loud.mean()))


def voice_cues(waveform: np.ndarray, reference: VoiceReference | None = None,
               sample_rate_hz: int = _SAMPLE_RATE_HZ) -> dict[str, float]:
    """Measured vocal cue values (:mod:`r1omni.claims` ranges) of a waveform; cues it cannot tell are left out.

    The maps invert the benchmark's voice synthesis: pitch is the median F0 in semitones above the
    reference over 7; contour the fitted F0 change over 8 semitones; pitch range the detrended
    spread; loudness the voiced level (-34 .. -12 dBFS around the reference); rate the syllables
    per second (2.5 .. 7.5); pauses the loud share (0.77 with none .. 0.28 with the most).
    """
    reference = reference or VoiceReference()
    m = measure_voice(waveform, sample_rate_hz)
    cues: dict[str, float] = {}
    if m.median_f0_hz is not None:
        cues["pitch"] = float(np.clip(12 * np.log2(m.median_f0_hz / reference.f0_hz) / 7.0, -1, 1))
        cues["contour"] = float(np.clip(m.f0_slope_semitones / 8.0, -1, 1))
        cues["pitch_range"] = float(np.clip((m.f0_spread_semitones - 0.5) / 6.0, 0, 1))
        cues["loudness"] = float(np.clip((m.level_dbfs - reference.level_dbfs + 11) / 22.0, 0, 1))
    if m.syllables_per_second is not None:
        cues["rate"] = float(np.clip((m.syllables_per_second - 2.5) / 5.0, 0, 1))
    if m.voiced_seconds > 0:
        cues["pauses"] = float(np.clip((0.77 - m.loud_share) / 0.49, 0, 1))
    return cues
