"""Emotion label sets per corpus and the synonym / morphology map to canonical labels.

Canonical labels are the lower-case adjective forms R1-Omni trains on (``happy``, ``sad``,
``surprise``, ``fear``, ``contemptuous`` ...). Each corpus keeps its own word list as distributed
(``LabelSet.raw``) so adapters can translate in both directions. Matching is by *word*, never by
integer index, because codebases disagree on the index order of MAFW.

This module is the only place that knows which words mean the same emotion. It does no I/O and
imports only the standard library.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "LabelSet",
    "LABEL_SETS",
    "DEFAULT_LABEL_SET",
    "DFEW",
    "MAFW",
    "RAVDESS",
    "MER2023",
    "R1OMNI_TRAIN",
    "SYNONYMS",
    "normalize_label",
    "strict_label",
    "concluded_label",
    "get_label_set",
]


@dataclass(frozen=True)
class LabelSet:
    """The classes of one corpus, in its official order.

    ``labels`` are canonical words; ``raw`` the same classes spelled as the corpus distributes them
    (``raw[i]`` is ``labels[i]``).
    """

    name: str
    labels: tuple[str, ...]
    raw: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.raw):
            raise ValueError(f"label set {self.name!r}: {len(self.labels)} labels but {len(self.raw)} raw names")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"label set {self.name!r} has duplicate labels: {self.labels}")

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def from_raw(self, word: str) -> str | None:
        """Canonical label for a word as distributed by this corpus (case-insensitive), else None."""
        key = word.strip().lower()
        for raw, canonical in zip(self.raw, self.labels):
            if raw.lower() == key:
                return canonical
        return normalize_label(word, self.labels)


# DFEW: official 1-based order 1 Happy ... 7 Fear (EmoLabel_DataSplit CSVs hold the integer).
DFEW = LabelSet(
    "dfew",
    ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
    ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"),
)
# MAFW: words from the split files; the order is MAE-DFER's (there is no official integer order).
MAFW = LabelSet(
    "mafw",
    ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
     "contemptuous", "anxious", "helpless", "disappointed"),
    ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
     "contempt", "anxiety", "helplessness", "disappointment"),
)
# RAVDESS: filename emotion codes 01..08. "calm" has no counterpart in R1-Omni's training vocabulary.
RAVDESS = LabelSet(
    "ravdess",
    ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
)
MER2023 = LabelSet(
    "mer2023",
    ("neutral", "angry", "happy", "sad", "worried", "surprise"),
    ("neutral", "angry", "happy", "sad", "worried", "surprise"),
)
# The vocabulary R1-Omni's GRPO stage saw (MAFW + DFEW train labels).
R1OMNI_TRAIN = LabelSet(
    "r1omni",
    ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear",
     "contemptuous", "anxious", "helpless", "disappointed"),
    ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear",
     "contemptuous", "anxious", "helpless", "disappointed"),
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (DFEW, MAFW, RAVDESS, MER2023, R1OMNI_TRAIN)}
# The generated benchmark uses DFEW's seven classes.
LABEL_SETS["synth"] = LabelSet("synth", DFEW.labels, DFEW.labels)


# The vocabulary answers are mapped to when the caller names none (``predict``, ``serve``): the labels
# the released R1-Omni checkpoints were trained on. One default, so every door maps answers alike.
DEFAULT_LABEL_SET = "r1omni"


def get_label_set(name: str) -> LabelSet:
    """Label set by corpus name; a clear error lists the known names."""
    try:
        return LABEL_SETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown label set {name!r}; known: {', '.join(sorted(LABEL_SETS))}") from None


# Surface forms -> canonical label. Keys are lower-case, single-spaced. Kept explicit (not a
# stemmer) so that every mapping can be read and argued about.
_CANONICAL_FORMS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "happiness", "joy", "joyful", "joyous", "glad", "cheerful", "delighted",
              "pleased", "excited", "hap", "happily", "elated", "amused"),
    "sad": ("sad", "sadness", "sorrow", "sorrowful", "unhappy", "upset", "depressed", "grief",
            "grieving", "gloomy", "melancholy", "sadly"),
    "neutral": ("neutral", "neutrality", "neu", "no emotion",
                "expressionless", "indifferent"),
    "angry": ("angry", "anger", "ang", "mad", "furious", "rage", "irritated", "annoyed", "angrily",
              "frustrated", "frustration", "hostile"),
    "surprise": ("surprise", "surprised", "surprising", "astonished", "astonishment", "amazed",
                 "amazement", "shocked", "shock", "startled"),
    "disgust": ("disgust", "disgusted", "disgusting", "dis", "revulsion", "repulsed", "aversion"),
    "fear": ("fear", "fearful", "fea", "afraid", "scared", "frightened", "terrified", "terror",
             "fright", "panic", "panicked"),
    "contemptuous": ("contemptuous", "contempt", "scorn", "scornful", "disdain", "disdainful"),
    "anxious": ("anxious", "anxiety", "nervous", "nervousness", "uneasy", "tense", "tension"),
    "helpless": ("helpless", "helplessness", "powerless", "resigned"),
    "disappointed": ("disappointed", "disappointment", "disappointing", "letdown", "let down"),
    "calm": ("calm", "calmness", "relaxed", "peaceful", "serene"),
    "worried": ("worried", "worry", "worrying", "concerned", "concern"),
}
SYNONYMS: dict[str, str] = {form: label for label, forms in _CANONICAL_FORMS.items() for form in forms}

# What may surround the emotion word in a free answer: "The emotion is: Happy." -> "happy".
_LEADING_PHRASES = re.compile(
    r"^(?:the\s+)?(?:main\s+|predominant\s+|final\s+)?(?:emotion|feeling|answer|label)\s*(?:is|:)\s*",
)
_EDGE_JUNK = re.compile(r"^[\W_]+|[\W_]+$")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = _LEADING_PHRASES.sub("", text)
    text = _EDGE_JUNK.sub("", text)
    return re.sub(r"\s+", " ", text)


def normalize_label(text: str | None, labels: tuple[str, ...] | LabelSet | None = None) -> str | None:
    """Map a free answer to a canonical label, or None when it names no known emotion.

    With ``labels`` given, a canonical label outside that list is also None (closed-set scoring).

    >>> normalize_label("Happiness.")
    'happy'
    >>> normalize_label("fearful", ("fear", "sad"))
    'fear'
    >>> normalize_label("calm", ("happy", "sad")) is None
    True
    """
    if not text:
        return None
    label = SYNONYMS.get(_clean(text[:200]))
    if label is None:
        return None
    allowed = labels.labels if isinstance(labels, LabelSet) else labels
    if allowed is not None and label not in allowed:
        return None
    return label


def strict_label(text: str | None, labels: tuple[str, ...] | LabelSet) -> str | None:
    """R1-Omni-compatible scoring: lower-case and strip, then exact membership, no synonyms.

    >>> strict_label(" Sad ", ("sad", "happy"))
    'sad'
    >>> strict_label("sadness", ("sad", "happy")) is None
    True
    """
    if text is None:
        return None
    allowed = labels.labels if isinstance(labels, LabelSet) else labels
    word = text.strip().lower()
    return word if word in allowed else None


_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def concluded_label(text: str) -> str | None:
    """The emotion a reasoning concludes with: the canonical label of the last emotion word it names
    (conclusions stand last), or None when it names none.

    >>> concluded_label("The voice hints at sadness, but the face points to happiness. So: happy.")
    'happy'
    """
    found = [SYNONYMS[word] for word in _WORD.findall(text.lower()) if word in SYNONYMS]
    return found[-1] if found else None
