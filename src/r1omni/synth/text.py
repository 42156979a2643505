"""The benchmark's language: cue descriptions, EMER-style reasoning, subtitles and the text corpus
for a tiny tokenizer.

Every sentence the generator writes is assembled from the data in this module and the cue wordings
of :data:`r1omni.claims.PHRASES`, so the vocabulary is closed and small: ``corpus()`` lists all of
it, and every cue claim the generator writes is one :func:`r1omni.claims.extract_claims` can check.

- :func:`describe` (pre-training captions) uses the first wording of each phrase and no emotion word.
- :func:`write_instruction` (base pre-training) asks one question of a clip and answers it: describe
  the clip, its face or its voice; one cue's level; the subtitle read back; or the emotion question
  answered from the subtitle's words alone. No answer ties a face or a voice to an emotion word.
- :func:`write_reasoning` (cold-start targets) varies the wording, says what each modality shows
  (or that it shows nothing clear), quotes the subtitle and concludes with the label.

This module only writes and reads text; it draws no cue values and renders nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from r1omni.claims import CUE_MODALITIES, FACE_CUES, PHRASES, VOICE_CUES, cue_levels, flat_cues
from r1omni.synth.cues import NOUNS
from r1omni.template import PROMPTS, render_completion, with_subtitle

__all__ = [
    "NEUTRAL_SUBTITLES",
    "HINT_SUBTITLES",
    "CUE_QUESTIONS",
    "describe",
    "write_instruction",
    "write_reasoning",
    "choose_subtitle",
    "reading_practice",
    "corpus_words",
    "random_subtitle",
    "corpus",
]

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
# Ambiguous clips (SynthConfig.ambiguous_fraction): both modalities clear, the label modality's emotion
# named first. Only words of corpus() (the tiny tokenizer's text stays as it was).
_AMBIGUOUS_FACE = ("The facial cues suggest {noun}, while the vocal cues suggest {other}; both are strong.",
                   "The face suggests {noun} and the voice suggests {other}; both are strong.")
_AMBIGUOUS_VOICE = ("The vocal cues suggest {noun}, while the facial cues suggest {other}; both are strong.",
                    "The voice suggests {noun} and the face suggests {other}; both are strong.")
_NEUTRAL = ("Neither the face nor the voice points to a particular emotion.",
            "No modality shows a clear emotional cue.")
_CONCLUSIONS = ("Therefore, the emotion is {label}.", "Based on these clues, the most likely emotion is {label}.",
                "So the person's emotion is {label}.")


# Base pre-training questions (the emotion question is the GRPO prompt itself, r1omni.template).
_DESCRIBE_QUESTION = PROMPTS["describe"]
_FACE_QUESTION = "Describe the person's face."
_VOICE_QUESTION = "Describe the person's voice."
_SUBTITLE_QUESTION = "What does the subtitle say?"
_SUBTITLE_ANSWER = 'The subtitle reads: "{subtitle}"'
CUE_QUESTIONS: dict[str, str] = {
    "mouth_curve": "Which way do the corners of the mouth turn?",
    "mouth_open": "How open is the mouth?",
    "brow_raise": "How high are the brows?",
    "brow_tilt": "How are the brows slanted?",
    "eye_open": "How open are the eyes?",
    "nose_wrinkle": "Is the nose wrinkled?",
    "pitch": "Is the pitch high or low?",
    "pitch_range": "How much does the pitch vary?",
    "contour": "Where does the pitch go toward the end?",
    "rate": "How fast is the speech?",
    "loudness": "How loud is the voice?",
    "pauses": "Are there pauses in the speech?",
    "tremor": "Is the voice steady?",
    "breathiness": "Is the voice breathy?",
    "harshness": "Is the voice harsh?",
}


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
    values = flat_cues(cues)
    return " ".join(_sentence(_modality_clause(levels, m, None, values, max_cues_per_modality))
                    for m in CUE_MODALITIES if m in levels)


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def write_instruction(cues: dict[str, Any], subtitle: str | None, subtitle_emotion: str | None,
                      rng: np.random.Generator, weights: dict[str, float],
                      max_cues_per_modality: int | None = None) -> tuple[str, str, str]:
    """``(task, question, answer)`` of one base pre-training example, the task drawn by ``weights``.

    Tasks (see ``SynthConfig.pretrain_tasks``): ``describe`` (:func:`describe`), ``face`` / ``voice``
    (one modality's sentence), ``cue`` (one cue's level in its canonical wording), ``subtitle`` (read
    back), ``text_emotion`` (the emotion question, answered in the <think>/<answer> format from the
    subtitle's words: the hinted emotion, or neutral for ordinary words). A task the clip cannot
    serve (no subtitle) falls back to ``describe``.
    """
    names = sorted(weights)
    probs = np.array([weights[name] for name in names], dtype=np.float64)
    task = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    if task in ("subtitle", "text_emotion") and not subtitle:
        task = "describe"
    levels, values = cue_levels(cues), flat_cues(cues)
    if task == "face" or task == "voice":
        clause = _modality_clause(levels, task, None, values, max_cues_per_modality)
        return task, _FACE_QUESTION if task == "face" else _VOICE_QUESTION, _sentence(clause)
    if task == "cue":
        cue = sorted(CUE_QUESTIONS)[int(rng.integers(len(CUE_QUESTIONS)))]
        return task, CUE_QUESTIONS[cue], _sentence(PHRASES[cue][levels[cue]][0])
    if task == "subtitle":
        return task, _SUBTITLE_QUESTION, _SUBTITLE_ANSWER.format(subtitle=subtitle.strip())
    if task == "text_emotion":
        label = subtitle_emotion or "neutral"
        words = (_pick(_TEXT_HINT, rng).format(noun=NOUNS[label]) if subtitle_emotion
                 else _pick(_TEXT_PLAIN, rng))
        think = (f"{_TEXT_OPENER.format(subtitle=subtitle.strip())} {words} "
                 f"{_pick(_CONCLUSIONS, rng).format(label=label)}")
        return task, PROMPTS["train"], render_completion(think, label)
    return "describe", _DESCRIBE_QUESTION, describe(cues, max_cues_per_modality)


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

    ``carrier`` is the clip's modality mix (``both``, ``face``, ``voice``, ``conflict``, ``ambiguous``); for
    a conflict clip ``label_modality`` is the strong modality and ``distractor`` the weak one's emotion; for
    an ambiguous clip (both modalities clear, :mod:`r1omni.synth.variants`) ``label_modality`` is the one
    whose emotion became the label and ``distractor`` the other's: the reasoning names both.
    """
    if label not in NOUNS:
        raise KeyError(f"no wording for label {label!r}; known: {sorted(NOUNS)}")
    levels = cue_levels(cues)
    values = flat_cues(cues)
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
    elif carrier in ("conflict", "ambiguous"):
        if label_modality not in CUE_MODALITIES or distractor not in NOUNS:
            raise ValueError(f"a {carrier} clip needs label_modality in {CUE_MODALITIES} and a distractor label, "
                             f"got {label_modality!r}, {distractor!r}")
        other_modality = "voice" if label_modality == "face" else "face"
        if levels.get(other_modality) == "neutral":
            # The other display stayed below every level threshold: nothing to weigh against.
            templates = _FACE_ONLY if label_modality == "face" else _VOICE_ONLY
        elif carrier == "conflict":
            templates = _CONFLICT_FACE if label_modality == "face" else _CONFLICT_VOICE
        else:
            templates = _AMBIGUOUS_FACE if label_modality == "face" else _AMBIGUOUS_VOICE
        parts.append(_pick(templates, rng).format(noun=noun, other=NOUNS[distractor]))
    else:
        raise ValueError(f"unknown carrier {carrier!r}; use both, face, voice, conflict or ambiguous")
    parts.append(_pick(_CONCLUSIONS, rng).format(label=label))
    return " ".join(parts)


def choose_subtitle(hint_label: str | None, rng: np.random.Generator) -> str:
    """An ordinary sentence, or with ``hint_label`` one that hints at that emotion."""
    if hint_label is None or hint_label == "neutral":
        return _pick(NEUTRAL_SUBTITLES, rng)
    return _pick(HINT_SUBTITLES[hint_label], rng)


@functools.cache
def corpus_words() -> tuple[str, ...]:
    """The distinct words of :func:`corpus` that name no emotion, punctuation stripped, sorted: the material
    of random subtitles (a random string must not hint at an emotion: pre-training teaches that ordinary
    words are no hint)."""
    emotional = {word.lower() for name, noun in NOUNS.items() for word in (name, *noun.split())} - {"a", "state"}
    words = {word.strip('".,?!:;') for text in corpus() for word in text.split()}
    return tuple(sorted(w for w in words if w and w.lower() not in emotional))


def random_subtitle(rng: np.random.Generator, words: tuple[str, ...] | None = None) -> str:
    """4-9 random ``words`` (default :func:`corpus_words`) as a sentence: a subtitle only copying can read back."""
    words = words or corpus_words()
    picked = [words[int(i)] for i in rng.integers(len(words), size=int(rng.integers(4, 10)))]
    return " ".join(picked).capitalize() + "."


def reading_practice(rng: np.random.Generator, words: tuple[str, ...] | None = None,
                     real_share: float = 0.3) -> tuple[str, str]:
    """One text-only exercise of reading the subtitle back: ``(question, answer)``, the question carrying the
    subtitle as every clip's prompt does (:func:`r1omni.template.with_subtitle`).

    Why: quoting the subtitle means copying it from the prompt, which a pre-trained LLM can do and a model
    trained from scratch on the benchmark's few dozen sentences never learns (it recites a frequent one:
    issue #26). Most subtitles here are random strings of ``words`` (:func:`random_subtitle`), which only
    copying can answer; ``real_share`` of them are the benchmark's own sentences. The answer is either the
    read-back answer of base pre-training or the reasoning's opening of the text modality, the two places
    a quote occurs.
    """
    if rng.random() < real_share:
        sentences = NEUTRAL_SUBTITLES + tuple(s for group in HINT_SUBTITLES.values() for s in group)
        subtitle = _pick(sentences, rng)
    else:
        subtitle = random_subtitle(rng, words)
    answer = _pick((_SUBTITLE_ANSWER, _TEXT_OPENER), rng).format(subtitle=subtitle)
    return with_subtitle(_SUBTITLE_QUESTION, subtitle), answer


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
    texts.extend((_DESCRIBE_QUESTION, _FACE_QUESTION, _VOICE_QUESTION, _SUBTITLE_QUESTION, *CUE_QUESTIONS.values()))
    texts.append(_SUBTITLE_ANSWER.format(subtitle=NEUTRAL_SUBTITLES[0]))
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
