"""How the benchmark draws cue values: each emotion's prototype in the cue space of
:mod:`r1omni.claims` (which cues exist, their ranges and named levels), and a clip's values.

A cue value is a plain float in the cue's range (``[-1, 1]`` for signed cues such as mouth curvature,
``[0, 1]`` for amounts such as loudness); ``0``/rest means "nothing happening". An emotion is a
prototype point in this space; a clip shows ``rest + intensity * (prototype - rest) + noise``. The
mapping emotion -> prototype is the only place the benchmark defines what an emotion looks or sounds
like, and both styles (ID and OOD) use it, so the OOD split stays solvable.

Levels (``"up"``, ``"high"``, ...) cut each cue's range at fixed thresholds (:mod:`r1omni.claims`);
descriptions, reasoning and the hallucination check all speak in levels. This module draws values;
it renders nothing and writes no text.
"""

from __future__ import annotations

import numpy as np

from r1omni.claims import CUES, FACE_CUES, VOICE_CUES

__all__ = ["PROTOTYPES", "NOUNS", "rest_values", "expression", "sample_carrier"]

# Emotion prototypes, after the usual descriptions of facial action units and vocal affect
# (happy: smile, high, lively; sad: frown, inner brows up, low, slow, soft, breathy; anger: lowered
# V-shaped brows, loud, harsh, falling; surprise: raised brows, wide eyes and mouth, rising pitch;
# disgust: wrinkled nose, narrowed eyes, low, slow, rough; fear: raised inner brows, wide eyes,
# high, fast, soft, trembling). Cues an emotion does not move stay at rest.
_FACE_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouth_curve": 0.95, "mouth_open": 0.45, "brow_raise": 0.1, "eye_open": 0.42},
    "sad": {"mouth_curve": -0.85, "mouth_open": 0.05, "brow_raise": -0.1, "brow_tilt": 0.9, "eye_open": 0.18},
    "angry": {"mouth_curve": -0.55, "mouth_open": 0.45, "brow_raise": -0.9, "brow_tilt": -0.9, "eye_open": 0.6},
    "surprise": {"mouth_curve": 0.0, "mouth_open": 0.95, "brow_raise": 0.95, "eye_open": 0.97},
    "disgust": {"mouth_curve": -0.6, "mouth_open": 0.12, "brow_raise": -0.55, "brow_tilt": -0.1,
                "eye_open": 0.15, "nose_wrinkle": 0.97},
    "fear": {"mouth_curve": -0.6, "mouth_open": 0.82, "brow_raise": 0.7, "brow_tilt": 0.85, "eye_open": 0.97},
}
_VOICE_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"pitch": 0.7, "pitch_range": 0.9, "contour": 0.1, "rate": 0.85, "loudness": 0.8},
    "sad": {"pitch": -0.8, "pitch_range": 0.0, "contour": -0.75, "rate": 0.05, "loudness": 0.12,
            "pauses": 0.8, "breathiness": 0.8, "harshness": 0.0},
    "angry": {"pitch": 0.1, "pitch_range": 0.75, "contour": -0.8, "rate": 0.8, "loudness": 0.97,
              "pauses": 0.1, "breathiness": 0.0, "harshness": 0.95},
    "surprise": {"pitch": 0.85, "pitch_range": 0.95, "contour": 0.95, "rate": 0.5, "loudness": 0.85},
    "disgust": {"pitch": -0.65, "pitch_range": 0.45, "contour": -0.55, "rate": 0.12, "loudness": 0.5,
                "pauses": 0.75, "harshness": 0.8},
    "fear": {"pitch": 0.8, "pitch_range": 0.3, "contour": 0.35, "rate": 0.95, "loudness": 0.15,
             "tremor": 0.97, "breathiness": 0.75},
}
PROTOTYPES: dict[str, dict[str, dict[str, float]]] = {
    label: {
        "face": {c.name: _FACE_PROTOTYPES[label].get(c.name, c.rest) for c in FACE_CUES},
        "voice": {c.name: _VOICE_PROTOTYPES[label].get(c.name, c.rest) for c in VOICE_CUES},
    }
    for label in _FACE_PROTOTYPES
}
# How reasoning names each label's emotion in running text.
NOUNS: dict[str, str] = {
    "happy": "happiness", "sad": "sadness", "neutral": "a neutral state", "angry": "anger",
    "surprise": "surprise", "disgust": "disgust", "fear": "fear",
}


def rest_values(modality: str) -> dict[str, float]:
    """Cue values of a modality at rest (the neutral prototype)."""
    return dict(PROTOTYPES["neutral"][modality])


def expression(label: str, intensity: float, modality: str, rng: np.random.Generator,
               noise: float) -> dict[str, float]:
    """Cue values of one modality showing ``label`` at ``intensity`` (0 rest .. 1 prototype), with
    Gaussian noise of standard deviation ``noise`` on every cue, clipped to the cue ranges."""
    if label not in PROTOTYPES:
        raise KeyError(f"no prototype for label {label!r}; known: {sorted(PROTOTYPES)}")
    values = {}
    for name, target in PROTOTYPES[label][modality].items():
        cue = CUES[name]
        value = cue.rest + intensity * (target - cue.rest) + noise * rng.standard_normal()
        values[name] = round(float(np.clip(value, cue.low, cue.high)), 4)
    return values


def sample_carrier(label: str, weights: dict[str, float], rng: np.random.Generator) -> str:
    """Draw which modality carries the label; a neutral clip has nothing to carry and is "both"."""
    names = sorted(weights)
    probs = np.array([weights[n] for n in names], dtype=np.float64)
    carrier = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    return "both" if label == "neutral" else carrier
