"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song): filename-coded clips as samples.

On-disk layout expected under ``root``: the ``Actor_01`` … ``Actor_24`` folders that every release
zip unpacks to (``Video_Speech_Actor_XX.zip``, ``Audio_Speech_Actors_01-24.zip``, the song zips).
They may sit directly under ``root`` or deeper (e.g. one folder per zip); each holds files named::

    Actor_12/01-01-06-01-02-01-12.mp4      MM-VV-EE-II-SS-RR-AA.(mp4|wav)

=====  ==============  ====================================================================
field  name            codes
=====  ==============  ====================================================================
MM     modality        01 full audio-video (mp4), 02 video-only (mp4), 03 audio-only (wav)
VV     vocal channel   01 speech, 02 song
EE     emotion         01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
                       08 surprised
II     intensity       01 normal, 02 strong
SS     statement       01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
RR     repetition      01 first, 02 second
AA     actor           01..24; odd actors are male, even actors female
=====  ==============  ====================================================================

Every field is decoded into ``meta`` (``modality``, ``vocal_channel``, ``emotion``, ``intensity``,
``statement``, ``repetition``, ``actor``, ``gender``, ``has_audio``). ``label_raw`` is the emotion code
as written (``"06"``); ``label`` is canonical (``fearful`` → ``fear``, ``surprised`` → ``surprise``,
``r1omni.labels.RAVDESS``).

Options choose the files (files outside the choice are counted in ``left_out``, with the option that
selects them, so a user holding only the audio-only release is told what to pass): ``modality``
``"av"`` (01, default: video with its soundtrack),
``"video"`` (02, silent mp4), ``"audio"`` (03, wav) or ``"all"``; ``vocal_channel`` ``"speech"``
(default), ``"song"`` or ``"both"``; ``label_set`` names the label set the labels must belong to
(default ``"ravdess"``, all eight; ``"r1omni"`` has no ``calm``).

Folds: six actor-independent folds of four actors, fold k = actors 4k-3 … 4k (fold 1 = actors 1-4,
…, fold 6 = actors 21-24). ``fold=k, split="test"`` is fold k's actors, ``split="train"`` the other
twenty; ``fold=None`` returns every actor, each sample tagged with its actor's fold and ``split``
"test" (its role in that fold). Published RAVDESS results use other actor groupings too (e.g.
EmoBox, MAE-DFER ship their own lists), so numbers are comparable only under the same assignment.

Skip or error: the folders hold nothing but data files, so anything unexpected is a stray file and
is skipped with its reason, never an error: a name that is not seven two-digit fields with .mp4/.wav,
an unknown code in any field, a suffix that disagrees with the modality, an actor field that
disagrees with the folder, an emotion outside ``label_set``. Stray files are reported whatever the
selection (their fold and modality are unknown). The same data-file name found in two folders
is an error (:class:`CorpusError`): the import would otherwise depend on which copy was found first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from r1omni.data.common import (
    Collector,
    CorpusError,
    ImportResult,
    check_fold,
    check_split,
    require_dir,
    resolve_label_set,
)
from r1omni.labels import RAVDESS
from r1omni.schema import Sample

__all__ = ["load", "decode_filename", "RavdessName", "fold_of_actor", "NUM_FOLDS", "MODALITIES", "VOCAL_CHANNELS"]

NUM_FOLDS = 6
ACTORS_PER_FOLD = 4
NUM_ACTORS = 24

_MODALITY = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
_SUFFIX = {"01": ".mp4", "02": ".mp4", "03": ".wav"}
_CHANNEL = {"01": "speech", "02": "song"}
_INTENSITY = {"01": "normal", "02": "strong"}
_STATEMENT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_REPETITION = {"01": 1, "02": 2}
# option value -> modality codes it selects
MODALITIES = {"av": ("01",), "video": ("02",), "audio": ("03",), "all": ("01", "02", "03")}
VOCAL_CHANNELS = {"speech": ("01",), "song": ("02",), "both": ("01", "02")}

_MODALITY_NAMES = {"01": "audio-video mp4", "02": "video-only mp4", "03": "audio-only wav"}


def _selecting(options: dict[str, tuple[str, ...]], code: str) -> str:
    """The single-valued option that selects ``code`` (e.g. "03" -> "audio")."""
    return next(name for name, codes in options.items() if codes == (code,))


_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)(\.[A-Za-z0-9]+)$")
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")


@dataclass(frozen=True)
class RavdessName:
    """The decoded fields of one RAVDESS file name."""

    modality_code: str
    vocal_channel_code: str
    emotion_code: str
    intensity: str
    statement: str
    repetition: int
    actor: int

    @property
    def modality(self) -> str:
        return _MODALITY[self.modality_code]

    @property
    def vocal_channel(self) -> str:
        return _CHANNEL[self.vocal_channel_code]

    @property
    def emotion(self) -> str:
        """The emotion word as RAVDESS names it (``fearful``, ``surprised`` …)."""
        return RAVDESS.raw[int(self.emotion_code) - 1]

    @property
    def label(self) -> str:
        """The canonical label (``fear``, ``surprise`` …)."""
        return RAVDESS.labels[int(self.emotion_code) - 1]

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    def meta(self) -> dict[str, object]:
        return {
            "modality": self.modality, "vocal_channel": self.vocal_channel, "emotion": self.emotion,
            "intensity": self.intensity, "statement": self.statement, "repetition": self.repetition,
            "actor": self.actor, "gender": self.gender, "has_audio": self.modality_code != "02",
        }


def decode_filename(name: str) -> RavdessName | str:
    """Decode ``MM-VV-EE-II-SS-RR-AA.ext``; on failure return the reason (a short phrase) instead.

    >>> decode_filename("03-01-06-01-02-01-12.wav").label
    'fear'
    >>> decode_filename("01-01-09-01-01-01-01.mp4")
    "unknown emotion code '09'"
    """
    match = _NAME.match(name)
    if match is None:
        return "malformed filename"
    mm, vv, ee, ii, ss, rr, aa, suffix = match.groups()
    checks = (("modality", mm, _MODALITY), ("vocal channel", vv, _CHANNEL),
              ("emotion", ee, {f"{i:02d}" for i in range(1, len(RAVDESS) + 1)}),
              ("intensity", ii, _INTENSITY), ("statement", ss, _STATEMENT), ("repetition", rr, _REPETITION),
              ("actor", aa, {f"{i:02d}" for i in range(1, NUM_ACTORS + 1)}))
    for field_name, code, known in checks:
        if code not in known:
            return f"unknown {field_name} code {code!r}"
    if suffix.lower() != _SUFFIX[mm]:
        return f"suffix {suffix!r} does not match modality {_MODALITY[mm]}"
    return RavdessName(mm, vv, ee, _INTENSITY[ii], _STATEMENT[ss], _REPETITION[rr], int(aa))


def fold_of_actor(actor: int) -> int:
    """The fold (1..6) whose test set holds ``actor`` (1..24): fold k = actors 4k-3 … 4k."""
    if not 1 <= actor <= NUM_ACTORS:
        raise ValueError(f"RAVDESS actors are 1..{NUM_ACTORS}, got {actor}")
    return (actor - 1) // ACTORS_PER_FOLD + 1


def _actor_dirs(root: Path) -> list[tuple[int, Path]]:
    found = []
    for current, dirs, _files in os.walk(root):
        dirs.sort()
        for name in list(dirs):
            match = _ACTOR_DIR.match(name)
            if match:
                found.append((int(match.group(1)), Path(current) / name))
                dirs.remove(name)  # actor folders hold files only
    if not found:
        raise CorpusError(root, None, "no Actor_XX folders found (unpack the RAVDESS zips under this folder)")
    return found


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         modality: str = "av", vocal_channel: str = "speech", label_set: str = "ravdess") -> ImportResult:
    """Import RAVDESS files (see the module docstring for the layout, options and rules)."""
    if modality not in MODALITIES:
        raise ValueError(f"ravdess: modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    if vocal_channel not in VOCAL_CHANNELS:
        raise ValueError(f"ravdess: vocal_channel must be one of {', '.join(VOCAL_CHANNELS)}, got {vocal_channel!r}")
    labels = resolve_label_set("ravdess", label_set)
    if labels is None:
        raise ValueError("ravdess: label_set must name a label set (default 'ravdess')")
    fold = check_fold("ravdess", fold, NUM_FOLDS)
    split = check_split("ravdess", split)
    if fold is None and split == "train":
        raise ValueError("ravdess: fold=None returns every actor once as a test sample of its fold; "
                         "pick a fold for split='train'")
    root = Path(os.path.abspath(root))
    require_dir(root, "RAVDESS root")
    collector = Collector("ravdess")
    seen: dict[str, Path] = {}
    for folder_actor, folder in _actor_dirs(root):
        for path in sorted(p for p in folder.iterdir() if not p.is_dir()):
            decoded = decode_filename(path.name)
            if isinstance(decoded, str):
                collector.skip(path.name, path, decoded)
                continue
            if path.name in seen:
                raise CorpusError(path, None, f"the same file is also at {seen[path.name]}; keep one copy")
            seen[path.name] = path
            if decoded.actor != folder_actor:
                collector.skip(path.stem, path, "actor field does not match its Actor_XX folder")
                continue
            if decoded.modality_code not in MODALITIES[modality]:
                collector.leave_out(f"{_MODALITY_NAMES[decoded.modality_code]} file(s): not in modality={modality!r} "
                                    f"(select them with modality={_selecting(MODALITIES, decoded.modality_code)!r} "
                                    "or 'all')")
                continue
            if decoded.vocal_channel_code not in VOCAL_CHANNELS[vocal_channel]:
                channel = _selecting(VOCAL_CHANNELS, decoded.vocal_channel_code)
                collector.leave_out(f"{channel} file(s): not in vocal_channel={vocal_channel!r} "
                                    f"(select them with vocal_channel={channel!r} or 'both')")
                continue
            actor_fold = fold_of_actor(decoded.actor)
            if fold is None:
                sample_fold, sample_split = actor_fold, "test"
            else:
                sample_fold, sample_split = fold, "test" if actor_fold == fold else "train"
                if split is not None and sample_split != split:
                    continue
            if decoded.label not in labels:
                collector.skip(path.stem, path, f"emotion {decoded.label!r} not in label set {labels.name!r}")
                continue
            is_audio = decoded.modality_code == "03"
            collector.use(Sample(
                id=path.stem, corpus="ravdess",
                video=None if is_audio else str(path), audio=str(path) if is_audio else None,
                label=decoded.label, label_raw=decoded.emotion_code, split=sample_split, fold=sample_fold,
                meta=decoded.meta(),
            ))
    return collector.result()
