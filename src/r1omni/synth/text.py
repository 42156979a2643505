"""The benchmark's language: the cue phrase bank, cue descriptions, EMER-style reasoning, subtitles,
the text corpus for a tiny tokenizer, and the claim extractor behind the hallucination rate.

Every sentence the generator writes is assembled from the data in this module, so the vocabulary is
closed and small: ``corpus()`` lists all of it. A *claim* is a phrase of :data:`PHRASES` found in a
text; it asserts that a cue (or a whole modality, ``"face"`` / ``"voice"``) is at a level, and
:func:`cue_levels` gives the true levels of a clip in the same terms, so a claim can be checked.

- :func:`describe` (pre-training captions) uses the first wording of each phrase and no emotion word.
- :func:`write_reasoning` (cold-start targets) varies the wording, says what each modality shows
  (or that it shows nothing clear), quotes the subtitle and concludes with the label.

This module only writes and reads text; it draws no cue values and renders nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np

from r1omni.synth.cues import CUES, FACE_CUES, MODALITIES, NOUNS, VOICE_CUES

__all__ = [
    "PHRASES",
    "NEUTRAL_SUBTITLES",
    "HINT_SUBTITLES",
    "cue_levels",
    "describe",
    "write_reasoning",
    "choose_subtitle",
    "extract_claims",
    "claim_errors",
    "corpus",
]

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

# Ordinary sentences: they fit any emotion, so they carry no label.
NEUTRAL_SUBTITLES: tuple[str, ...] = (
    "I put the keys on the kitchen table.",
    "The bus leaves at half past seven.",
    "We need to buy more bread and milk.",
    "She said the meeting moved to Thursday.",
    "The train was on time this morning.",
    "Can you pass me that blue folder?",
    "I think the shop closes at six.",
    "He painted the fence last weekend.",
    "The report is due at the end of the month.",
    "Let me check the address again.",
    "They moved to a flat near the station.",
    "It rained for most of the afternoon.",
    "I left my umbrella in the car.",
    "The printer on the second floor is free.",
    "We walked to the park after lunch.",
    "My brother called me last night.",
    "The new schedule starts next week.",
    "Put the boxes by the front door.",
    "I read that book two years ago.",
    "The coffee machine is in the corner.",
    "Turn left at the next corner.",
    "The letter came this morning.",
    "We should water the plants today.",
    "The film starts at nine o'clock.",
)
# Sentences that hint at one emotion without naming it.
HINT_SUBTITLES: dict[str, tuple[str, ...]] = {
    "happy": ("We won the whole tournament!", "This is the best day I have had in years!",
              "You got the job, that is wonderful news!", "I cannot stop smiling today."),
    "sad": ("I really miss how things used to be.", "He is not coming back, is he?",
            "Nobody remembered my birthday.", "I lost the only photo I had of her."),
    "angry": ("How many times do I have to tell you?", "You broke it again, and you lied about it!",
              "Get out of my office right now!", "Stop touching my things!"),
    "surprise": ("Wait, you did all of this yourself?", "No way, is that really you?",
                 "I never expected to see you here!", "What, it is already finished?"),
    "disgust": ("Ugh, what is that smell in the fridge?", "There is a hair in my soup.",
                "Do not make me touch that slimy thing.", "That is the most revolting thing I have seen."),
    "fear": ("Did you hear that noise downstairs?", "Please, do not leave me alone in here.",
             "Someone is following us, walk faster.", "I think there is somebody in the house."),
}

_VIDEO_OPENERS = ("In the video,", "In the video clip,", "Looking at the video,")
_AUDIO_OPENERS = ("In the audio,", "In the audio track,", "Listening to the audio,")
_TEXT_OPENER = 'In the text, the subtitle reads: "{subtitle}"'
_TEXT_HINT = ("The words hint at {noun}.", "The words suggest {noun}.")
_TEXT_PLAIN = ("The words carry no emotional hint.", "The words themselves are ordinary.")
_BOTH = ("Both the face and the voice point to {noun}.", "The facial and vocal cues agree on {noun}.")
_FACE_ONLY = ("The face carries the emotion and suggests {noun}, while the voice adds little.",
              "The facial cues suggest {noun}; the voice gives no clear signal.")
_VOICE_ONLY = ("The voice carries the emotion and suggests {noun}, while the face adds little.",
               "The vocal cues suggest {noun}; the face gives no clear signal.")
_CONFLICT_FACE = ("The voice hints weakly at {other}, but the facial cues are much stronger and point to {noun}.",
                  "The weak vocal hint of {other} is outweighed by the strong facial cues of {noun}.")
_CONFLICT_VOICE = ("The face hints weakly at {other}, but the vocal cues are much stronger and point to {noun}.",
                   "The weak facial hint of {other} is outweighed by the strong vocal cues of {noun}.")
_NEUTRAL = ("Neither the face nor the voice points to a particular emotion.",
            "No modality shows a clear emotional cue.")
_CONCLUSIONS = ("Therefore, the emotion is {label}.", "Based on these clues, the most likely emotion is {label}.",
                "So the person's emotion is {label}.")


def _flatten(cues: dict[str, Any]) -> dict[str, float]:
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
    flat = _flatten(cues)
    levels = {name: CUES[name].level(value) for name, value in flat.items()}
    for modality, modality_cues in (("face", FACE_CUES), ("voice", VOICE_CUES)):
        if all(c.name in levels for c in modality_cues):
            at_rest = all(levels[c.name] == c.rest_level for c in modality_cues)
            levels[modality] = "neutral" if at_rest else "expressive"
    return levels


def _salient(levels: dict[str, str], modality: str, values: dict[str, float] | None = None,
             limit: int | None = None) -> list[tuple[str, str]]:
    """(cue, level) pairs of a modality that are away from rest, in the fixed cue order; with
    ``limit``, only the ``limit`` cues furthest from rest (relative to their range)."""
    cues = [c for c in (FACE_CUES if modality == "face" else VOICE_CUES)
            if c.name in levels and levels[c.name] != c.rest_level]
    if limit is not None and values is not None and len(cues) > limit:
        strongest = sorted(cues, key=lambda c: -abs(values[c.name] - c.rest) / (c.high - c.low))[:limit]
        cues = [c for c in cues if c in strongest]
    return [(c.name, levels[c.name]) for c in cues]


def _join(clauses: list[str]) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _modality_clause(levels: dict[str, str], modality: str, rng: np.random.Generator | None,
                     values: dict[str, float] | None = None, limit: int | None = None) -> str:
    salient = _salient(levels, modality, values, limit)
    if not salient:
        options = PHRASES[modality]["neutral"]
        return options[0] if rng is None else options[int(rng.integers(len(options)))]
    clauses = []
    for cue, level in salient:
        options = PHRASES[cue][level]
        clauses.append(options[0] if rng is None else options[int(rng.integers(len(options)))])
    return _join(clauses)


def describe(cues: dict[str, Any], max_cues_per_modality: int | None = None) -> str:
    """A caption of a clip's cues for base pre-training: what the face and the voice do, in the
    canonical wording, without any emotion word (with ``max_cues_per_modality``, only the strongest
    cues of each modality, as the cold-start reasoning names them).

    >>> from r1omni.synth.cues import PROTOTYPES
    >>> describe({"face": PROTOTYPES["neutral"]["face"], "voice": {**PROTOTYPES["neutral"]["voice"], "pitch": 0.7}})
    'The face shows no clear expression. The pitch is high.'
    """
    levels = cue_levels(cues)
    values = _flatten(cues)
    return " ".join(_sentence(_modality_clause(levels, m, None, values, max_cues_per_modality))
                    for m in MODALITIES if m in levels)


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def write_reasoning(cues: dict[str, Any], label: str, rng: np.random.Generator, *, carrier: str,
                    label_modality: str | None = None, distractor: str | None = None,
                    subtitle: str | None = None, subtitle_carries_label: bool = False,
                    max_cues_per_modality: int | None = None, cue_wording: str = "varied") -> str:
    """EMER-style reasoning for a clip: the video, the audio and the text in turn, each described as
    it is (``"...shows no clear expression"`` when a modality is at rest), how they combine, and the
    conclusion naming ``label``. ``rng`` picks the wording only. ``max_cues_per_modality`` keeps
    only the strongest cues of each modality (shorter reasoning; every claim is still true).
    ``cue_wording="canonical"`` names cues in the wording of :func:`describe` (openers, the weighing
    sentence and the conclusion still vary), so a model pre-trained on descriptions can reuse them.

    ``carrier`` is the clip's modality mix (``both``, ``face``, ``voice``, ``conflict``); for a
    conflict clip ``label_modality`` is the strong modality and ``distractor`` the weak one's emotion.
    """
    if label not in NOUNS:
        raise KeyError(f"no wording for label {label!r}; known: {sorted(NOUNS)}")
    levels = cue_levels(cues)
    values = _flatten(cues)
    noun = NOUNS[label]
    if cue_wording not in ("varied", "canonical"):
        raise ValueError(f"cue_wording must be 'varied' or 'canonical', got {cue_wording!r}")
    limit = max_cues_per_modality
    wording_rng = rng if cue_wording == "varied" else None
    video_opener, audio_opener = _pick(_VIDEO_OPENERS, rng), _pick(_AUDIO_OPENERS, rng)
    parts = [f"{video_opener} {_modality_clause(levels, 'face', wording_rng, values, limit)}.",
             f"{audio_opener} {_modality_clause(levels, 'voice', wording_rng, values, limit)}."]
    if subtitle:
        hint = _pick(_TEXT_HINT, rng).format(noun=noun) if subtitle_carries_label else _pick(_TEXT_PLAIN, rng)
        parts.append(f"{_TEXT_OPENER.format(subtitle=subtitle.strip())} {hint}")
    if label == "neutral":
        parts.append(_pick(_NEUTRAL, rng))
    elif carrier == "both":
        parts.append(_pick(_BOTH, rng).format(noun=noun))
    elif carrier == "face":
        parts.append(_pick(_FACE_ONLY, rng).format(noun=noun))
    elif carrier == "voice":
        parts.append(_pick(_VOICE_ONLY, rng).format(noun=noun))
    elif carrier == "conflict":
        if label_modality not in MODALITIES or distractor not in NOUNS:
            raise ValueError(f"a conflict clip needs label_modality in {MODALITIES} and a distractor label, got "
                             f"{label_modality!r}, {distractor!r}")
        weak_modality = "voice" if label_modality == "face" else "face"
        if levels.get(weak_modality) == "neutral":
            # The weak display stayed below every level threshold: nothing to weigh against.
            templates = _FACE_ONLY if label_modality == "face" else _VOICE_ONLY
        else:
            templates = _CONFLICT_FACE if label_modality == "face" else _CONFLICT_VOICE
        parts.append(_pick(templates, rng).format(noun=noun, other=NOUNS[distractor]))
    else:
        raise ValueError(f"unknown carrier {carrier!r}; use both, face, voice or conflict")
    parts.append(_pick(_CONCLUSIONS, rng).format(label=label))
    return " ".join(parts)


def choose_subtitle(hint_label: str | None, rng: np.random.Generator) -> str:
    """An ordinary sentence, or with ``hint_label`` one that hints at that emotion."""
    if hint_label is None or hint_label == "neutral":
        return _pick(NEUTRAL_SUBTITLES, rng)
    return _pick(HINT_SUBTITLES[hint_label], rng)


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
    pattern, lookup = _claim_pattern()
    normalised = re.sub(r"\s+", " ", text.lower())
    return [lookup[match.group(0)] for match in pattern.finditer(normalised)]


def claim_errors(text: str, cues: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Claims of ``text`` that contradict a clip's true cues, as (cue, claimed, true) triples.

    The hallucination rate of a text is ``len(claim_errors(...)) / len(extract_claims(...))``.
    Claims about cues missing from ``cues`` are not judged.
    """
    levels = cue_levels(cues)
    return [(cue, level, levels[cue]) for cue, level in extract_claims(text)
            if cue in levels and levels[cue] != level]


def corpus() -> list[str]:
    """Every phrase, template and sentence the generator can emit (templates filled in with every
    label), without duplicates: the training text of the tiny presets' tokenizer."""
    texts: list[str] = []
    for levels in PHRASES.values():
        for phrases in levels.values():
            texts.extend(phrases)
            texts.extend(_sentence(p) for p in phrases)
    texts.extend(NEUTRAL_SUBTITLES)
    for sentences in HINT_SUBTITLES.values():
        texts.extend(sentences)
    texts.extend(_VIDEO_OPENERS + _AUDIO_OPENERS + _TEXT_PLAIN + _NEUTRAL)
    texts.append(_TEXT_OPENER.format(subtitle=NEUTRAL_SUBTITLES[0]))
    for label, noun in NOUNS.items():
        texts.append(label)
        for template in _TEXT_HINT + _BOTH + _FACE_ONLY + _VOICE_ONLY:
            texts.append(template.format(noun=noun))
        for other, other_noun in NOUNS.items():
            if other != label:
                for template in _CONFLICT_FACE + _CONFLICT_VOICE:
                    texts.append(template.format(noun=noun, other=other_noun))
        for template in _CONCLUSIONS:
            texts.append(template.format(label=label))
    return list(dict.fromkeys(texts))
