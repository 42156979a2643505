"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset): filename-coded clips as samples.

On-disk layout expected under ``root`` (the public repository's folders; only the parts read)::

    AudioWAV/1001_DFA_ANG_XX.wav        16 kHz speech            (``modality="audio"``)
    VideoFlash/1001_DFA_ANG_XX.flv      video with its soundtrack (``modality="av"``, default)
    VideoDemographics.csv               optional: ActorID, Age, Sex, Race, Ethnicity

File names are ``{actor}_{sentence}_{emotion}_{level}``: actor 1001..1091; sentence one of twelve
three-letter codes (the sentence text goes to ``subtitle``, the code to ``meta["sentence"]``);
emotion ``ANG, DIS, FEA, HAP, NEU, SAD`` (``label_raw``; canonical ``angry, disgust, fear, happy,
neutral, sad``); level ``LO, MD, HI, XX`` (low, medium, high, unspecified). With the demographics
file, ``meta`` also has the actor's ``gender``, ``age``, ``race`` and ``ethnicity``.

CREMA-D has no official folds or splits (published protocols differ), so ``fold`` and ``split``
must be None; ``meta["actor"]`` allows speaker-independent splits downstream.

Skip or error: anything in the media folder that is not a well-formed name with the modality's
suffix is a stray file and is skipped with its reason (so are unknown codes). Four recordings known
to be broken (``1076_MTI_NEU_XX``, ``1076_MTI_SAD_XX``, ``1064_TIE_SAD_XX``, ``1064_IEO_DIS_MD``,
excluded by HiCMAE) are skipped unless ``skip_known_broken=False``. A missing media folder and a
malformed demographics row are errors (:class:`CorpusError`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from r1omni.data.common import Collector, CorpusError, ImportResult, check_no_fold_or_split, read_csv_rows, require_dir
from r1omni.schema import Sample

__all__ = ["load", "decode_filename", "CremadName", "SENTENCES", "EMOTIONS", "LEVELS", "KNOWN_BROKEN", "MODALITIES"]

SENTENCES = {
    "IEO": "It's eleven o'clock.", "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.", "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.", "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.", "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.", "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.", "WSI": "We'll stop in a couple of minutes.",
}
EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
KNOWN_BROKEN = frozenset({"1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD"})
# option value -> (folder, suffix)
MODALITIES = {"av": ("VideoFlash", ".flv"), "audio": ("AudioWAV", ".wav")}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


@dataclass(frozen=True)
class CremadName:
    """The decoded fields of one CREMA-D file name."""

    actor: int
    sentence: str   # three-letter code; SENTENCES[sentence] is the text
    emotion: str    # three-letter code as distributed
    level: str      # low / medium / high / unspecified

    @property
    def label(self) -> str:
        return EMOTIONS[self.emotion]


def decode_filename(stem: str) -> CremadName | str:
    """The fields of ``{actor}_{sentence}_{emotion}_{level}``, or the reason it cannot be decoded.

    >>> decode_filename("1001_DFA_ANG_XX").label
    'angry'
    >>> decode_filename("1001_DFA_BOR_XX")
    "unknown emotion code 'BOR'"
    """
    match = _NAME.match(stem)
    if match is None:
        return "malformed filename"
    actor, sentence, emotion, level = match.groups()
    if not 1001 <= int(actor) <= 1091:
        return f"unknown actor {actor!r}"
    for what, code, known in (("sentence", sentence, SENTENCES), ("emotion", emotion, EMOTIONS),
                              ("level", level, LEVELS)):
        if code not in known:
            return f"unknown {what} code {code!r}"
    return CremadName(int(actor), sentence, emotion, LEVELS[level])


def _demographics(path: Path) -> dict[int, dict[str, object]]:
    people: dict[int, dict[str, object]] = {}
    for line, row in read_csv_rows(path, ("actorid", "age", "sex", "race", "ethnicity")):
        if not row["actorid"].isdigit() or not row["age"].isdigit():
            raise CorpusError(path, line, f"ActorID {row['actorid']!r} / Age {row['age']!r} are not integers")
        people[int(row["actorid"])] = {"gender": row["sex"].lower(), "age": int(row["age"]),
                                       "race": row["race"], "ethnicity": row["ethnicity"]}
    return people


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         modality: str = "av", skip_known_broken: bool = True) -> ImportResult:
    """Import CREMA-D (see the module docstring for the layout and rules)."""
    check_no_fold_or_split("cremad", fold, split)
    if modality not in MODALITIES:
        raise ValueError(f"cremad: modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    root = Path(os.path.abspath(root))
    folder_name, suffix = MODALITIES[modality]
    folder = require_dir(root / folder_name, f"CREMA-D {folder_name}")
    demographics_path = root / "VideoDemographics.csv"
    people = _demographics(demographics_path) if demographics_path.is_file() else {}
    collector = Collector("cremad")
    for path in sorted(p for p in folder.iterdir() if not p.is_dir()):
        if path.suffix.lower() != suffix:
            collector.skip(path.name, path, f"not a {suffix} file")
            continue
        decoded = decode_filename(path.stem)
        if isinstance(decoded, str):
            collector.skip(path.name, path, decoded)
            continue
        if skip_known_broken and path.stem in KNOWN_BROKEN:
            collector.skip(path.stem, path, "known broken recording")
            continue
        meta: dict[str, object] = {"actor": decoded.actor, "sentence": decoded.sentence, "level": decoded.level}
        meta.update(people.get(decoded.actor, {}))
        is_audio = modality == "audio"
        collector.use(Sample(
            id=path.stem, corpus="cremad", video=None if is_audio else str(path),
            audio=str(path) if is_audio else None, label=decoded.label, label_raw=decoded.emotion,
            subtitle=SENTENCES[decoded.sentence], meta=meta,
        ))
    return collector.result()
