"""The vocabulary of checkable claims: which facial and vocal cues exist, their named levels, the
wordings that claim a level, and the checker that holds a text's claims against a clip's cues.

Shared by everything that writes, measures, checks or pays for cue claims: the benchmark generator
(:mod:`r1omni.synth` draws cue values and writes reasoning with these wordings), the explanation
reports (hallucination rate), and the grounding reward (:mod:`r1omni.rewards`). A cue value is a
float in the cue's range; :meth:`Cue.level` cuts it at fixed thresholds into named levels, and a
*claim* is a phrase of :data:`PHRASES` found in a text, asserting that a cue (or a whole modality,
``"face"`` / ``"voice"``) is at a level. Part of the contract: stdlib and numpy only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["Cue", "FACE_CUES", "VOICE_CUES", "CUES", "CUE_MODALITIES", "PHRASES", "cue_level", "cue_levels",
           "flat_cues", "extract_claims", "claim_errors", "ClaimCheck", "check_claims", "SUPPORTED", "CONTRADICTED",
           "NOT_CHECKABLE"]

CUE_MODALITIES = ("face", "voice")
"""The modalities cues belong to; not the input modalities of a clip (``r1omni.clips.MODALITIES``)."""


@dataclass(frozen=True)
class Cue:
    """One interpretable cue: its range, resting value and the thresholds that name its levels."""

    name: str
    modality: str
    low: float
    high: float
    rest: float
    thresholds: tuple[float, ...]
    levels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.thresholds) + 1:
            raise ValueError(f"cue {self.name}: {len(self.levels)} levels need {len(self.levels) - 1} thresholds")
        if list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"cue {self.name}: thresholds must ascend, got {self.thresholds}")

    def level(self, value: float) -> str:
        return self.levels[int(np.searchsorted(self.thresholds, value, side="right"))]

    @property
    def rest_level(self) -> str:
        return self.level(self.rest)


# Thresholds sit well away from the resting value and from the prototypes below, so that levels are
# stable under the per-clip noise (cue_noise 0.06 by default).
FACE_CUES: tuple[Cue, ...] = (
    Cue("mouth_curve", "face", -1, 1, 0.0, (-0.3, 0.3), ("down", "flat", "up")),
    Cue("mouth_open", "face", 0, 1, 0.1, (0.3, 0.6), ("closed", "parted", "wide")),
    Cue("brow_raise", "face", -1, 1, 0.0, (-0.35, 0.35), ("lowered", "level", "raised")),
    # Positive: inner ends up (sad, fear); negative: inner ends down and together (anger).
    Cue("brow_tilt", "face", -1, 1, 0.0, (-0.35, 0.35), ("inner_down", "even", "inner_up")),
    Cue("eye_open", "face", 0, 1, 0.5, (0.33, 0.72), ("narrowed", "normal", "wide")),
    Cue("nose_wrinkle", "face", 0, 1, 0.0, (0.5,), ("smooth", "wrinkled")),
)
VOICE_CUES: tuple[Cue, ...] = (
    # Pitch level relative to the speaker's reference: +-1 is +-7 semitones (see voice.py).
    Cue("pitch", "voice", -1, 1, 0.0, (-0.3, 0.3), ("low", "medium", "high")),
    Cue("pitch_range", "voice", 0, 1, 0.35, (0.17, 0.6), ("narrow", "moderate", "wide")),
    Cue("contour", "voice", -1, 1, -0.1, (-0.4, 0.4), ("falling", "flat", "rising")),
    Cue("rate", "voice", 0, 1, 0.5, (0.33, 0.67), ("slow", "moderate", "fast")),
    Cue("loudness", "voice", 0, 1, 0.5, (0.33, 0.67), ("soft", "moderate", "loud")),
    Cue("pauses", "voice", 0, 1, 0.2, (0.45,), ("few", "many")),
    Cue("tremor", "voice", 0, 1, 0.0, (0.5,), ("steady", "trembling")),
    Cue("breathiness", "voice", 0, 1, 0.15, (0.5,), ("clear", "breathy")),
    Cue("harshness", "voice", 0, 1, 0.1, (0.5,), ("smooth", "harsh")),
)
CUES: dict[str, Cue] = {cue.name: cue for cue in FACE_CUES + VOICE_CUES}

# cue -> level -> wordings (the first is canonical). "face" / "voice" with level "neutral" claim that a
# whole modality shows nothing; their other level, "expressive", has no wording. Lower case clauses,
# none of them a substring of a wording with another meaning (tests check both).
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "mouth_curve": {
        "up": ("the mouth corners turn up", "the lips curve upward"),
        "down": ("the mouth corners turn down", "the lips curve downward"),
        "flat": ("the mouth line is straight", "the lips form a straight line"),
    },
    "mouth_open": {
        "closed": ("the lips are closed", "the mouth is shut"),
        "parted": ("the lips are parted", "the mouth is slightly open"),
        "wide": ("the mouth is wide open", "the jaw drops open"),
    },
    "brow_raise": {
        "raised": ("the brows are raised", "the eyebrows lift high"),
        "lowered": ("the brows are lowered", "the eyebrows press down"),
        "level": ("the brows sit at their usual height", "the brows stay level"),
    },
    "brow_tilt": {
        "inner_up": ("the inner ends of the brows rise", "the brows slant up in the middle"),
        "inner_down": ("the brows are drawn together and down", "the brows knit into a frown"),
        "even": ("the brows are not slanted", "the brows lie flat"),
    },
    "eye_open": {
        "wide": ("the eyes are wide open", "the eyes open wide"),
        "narrowed": ("the eyes are narrowed", "the eyes squint"),
        "normal": ("the eyes are normally open", "the eyes look ordinary"),
    },
    "nose_wrinkle": {
        "wrinkled": ("the nose wrinkles", "the nose is scrunched up"),
        "smooth": ("the nose is smooth", "the nose stays smooth"),
    },
    "face": {
        "neutral": ("the face shows no clear expression", "the face stays still and blank"),
    },
    "pitch": {
        "high": ("the pitch is high", "the voice is high-pitched"),
        "low": ("the pitch is low", "the voice is low-pitched"),
        "medium": ("the pitch is medium", "the voice sits at a middle pitch"),
    },
    "pitch_range": {
        "wide": ("the pitch varies a lot", "the intonation is lively"),
        "narrow": ("the voice is monotone", "the pitch barely moves"),
        "moderate": ("the pitch varies a little", "the intonation is moderate"),
    },
    "contour": {
        "rising": ("the pitch rises toward the end", "the intonation goes up"),
        "falling": ("the pitch falls toward the end", "the intonation goes down"),
        "flat": ("the pitch stays flat overall", "the intonation is level"),
    },
    "rate": {
        "fast": ("the speech is fast", "the words come quickly"),
        "slow": ("the speech is slow", "the words come slowly"),
        "moderate": ("the speech is at a moderate pace", "the tempo is ordinary"),
    },
    "loudness": {
        "loud": ("the voice is loud", "the speaker talks loudly"),
        "soft": ("the voice is soft", "the speaker talks quietly"),
        "moderate": ("the volume is moderate", "the voice is of normal loudness"),
    },
    "pauses": {
        "many": ("there are long pauses", "the speech breaks into pauses"),
        "few": ("the speech flows without pauses", "there are few pauses"),
    },
    "tremor": {
        "trembling": ("the voice trembles", "the voice is shaky"),
        "steady": ("the voice is steady", "the voice does not shake"),
    },
    "breathiness": {
        "breathy": ("the voice is breathy", "the voice sounds airy"),
        "clear": ("the voice is clear", "the voice is not breathy"),
    },
    "harshness": {
        "harsh": ("the voice is harsh", "the voice sounds rough"),
        "smooth": ("the voice is smooth", "the voice has no roughness"),
    },
    "voice": {
        "neutral": ("the voice shows no clear cue", "the voice is plain and even"),
    },
}

def cue_level(name: str, value: float) -> str:
    """The named level of a cue value, e.g. ``cue_level("pitch", 0.7) == "high"``."""
    return CUES[name].level(value)


def flat_cues(cues: dict[str, Any]) -> dict[str, float]:
    """Accept ``{"face": {...}, "voice": {...}}`` (as stored in ``meta["cues"]``) or a flat dict."""
    flat: dict[str, float] = {}
    for key, value in cues.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(CUES))
    if unknown:
        raise KeyError(f"unknown cue name(s) {unknown}; known: {sorted(CUES)}")
    return flat


def cue_levels(cues: dict[str, Any]) -> dict[str, str]:
    """The named level of every given cue, plus ``"face"`` / ``"voice"`` -> ``"neutral"`` when all of
    that modality's cues are at their resting level (``"expressive"`` otherwise).

    >>> levels = cue_levels({"face": {"mouth_curve": 0.8}, "voice": {"pitch": -0.6}})
    >>> levels["mouth_curve"], levels["pitch"]
    ('up', 'low')
    """
    flat = flat_cues(cues)
    levels = {name: CUES[name].level(value) for name, value in flat.items()}
    for modality, modality_cues in (("face", FACE_CUES), ("voice", VOICE_CUES)):
        if all(c.name in levels for c in modality_cues):
            at_rest = all(levels[c.name] == c.rest_level for c in modality_cues)
            levels[modality] = "neutral" if at_rest else "expressive"
    return levels


@lru_cache(maxsize=1)
def _claim_pattern() -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    lookup = {phrase: (cue, level) for cue, levels in PHRASES.items()
              for level, phrases in levels.items() for phrase in phrases}
    # Longest first, so that a wording is never read as a shorter one it contains.
    alternatives = sorted(lookup, key=len, reverse=True)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in alternatives) + r")\b")
    return pattern, lookup


def extract_claims(text: str) -> list[tuple[str, str]]:
    """The (cue, level) claims a text makes with the phrase bank's wordings, in order.

    >>> extract_claims("In the video, the brows are raised. In the audio, the voice trembles.")
    [('brow_raise', 'raised'), ('tremor', 'trembling')]
    """
    return [(check.cue, check.claimed) for check in check_claims(text, None)]


def claim_errors(text: str, cues: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Claims of ``text`` that contradict a clip's true cues, as (cue, claimed, true) triples.

    The hallucination rate of a text is ``len(claim_errors(...)) / len(extract_claims(...))``.
    Claims about cues missing from ``cues`` are not judged.
    """
    levels = cue_levels(cues)
    return [(cue, level, levels[cue]) for cue, level in extract_claims(text)
            if cue in levels and levels[cue] != level]


SUPPORTED, CONTRADICTED, NOT_CHECKABLE = "supported", "contradicted", "not checkable"


@dataclass(frozen=True)
class ClaimCheck:
    """One cue claim of a text, held against a clip's cue levels."""

    phrase: str            # the wording found (lower case)
    cue: str               # a cue name, or "face" / "voice" for a claim about a whole modality
    claimed: str           # the level the wording asserts
    actual: str | None     # the clip's level of that cue; None when it is not known
    verdict: str           # SUPPORTED, CONTRADICTED or NOT_CHECKABLE


def check_claims(text: str, levels: dict[str, str] | None) -> list[ClaimCheck]:
    """Every claim of ``text`` in order, with its verdict against ``levels`` (cue -> level, e.g. from
    :func:`cue_levels` of true or measured cues; None: nothing is known, nothing is checkable).

    >>> [(c.cue, c.verdict) for c in check_claims("The pitch is high; the nose wrinkles.", {"pitch": "low"})]
    [('pitch', 'contradicted'), ('nose_wrinkle', 'not checkable')]
    """
    pattern, lookup = _claim_pattern()
    checks = []
    for match in pattern.finditer(re.sub(r"\s+", " ", text.lower())):
        cue, claimed = lookup[match.group(0)]
        actual = (levels or {}).get(cue)
        verdict = NOT_CHECKABLE if actual is None else SUPPORTED if actual == claimed else CONTRADICTED
        checks.append(ClaimCheck(match.group(0), cue, claimed, actual, verdict))
    return checks
