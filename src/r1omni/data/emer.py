"""EMER (Explainable Multimodal Emotion Reasoning): clips with a written reasoning, as samples.

EMER annotates MER2023 clips; the annotations are public, the videos need the MER2023 licence.
On-disk layout expected under ``root``::

    gt-eng.csv                 v1: columns names, emotions, subtitles, reasons   (or dataset-v1/gt-eng.csv)
    final-EMER-reason.csv      v2: columns name, chinese, english                (or dataset-v2/…)
    check-openset.csv          v2, optional: columns name, openset               (or dataset-v2/…)
    video/{name}.mp4           the clips (folder and suffix are options: MER2023 ships .avi)
    audio/{name}.wav           optional, only with ``audio_dir="audio"``

``version`` is ``"v1"``, ``"v2"`` or ``"auto"`` (whichever annotation file exists; both is an error);
``annotations`` and ``openset`` name other files (relative to ``root``).

v1: ``reasons`` → ``reasoning``, ``subtitles`` → ``subtitle``, ``emotions`` (the MER2023 discrete
word) → ``label_raw`` and, normalised, ``label``.

v2 (OV-MERD): ``english`` → ``reasoning``, ``chinese`` → ``meta["reasoning_zh"]``. The subtitle is
quoted inside the description, not in a column, so ``subtitle`` stays None. Labels come from the
open-set file, whose ``openset`` cell is a Python list literal (``"['excited', 'joyful', 'happy']"``,
parsed with ``ast.literal_eval``): ``meta["openset"]`` keeps the whole list, ``label_raw`` the first
word that maps to a label of ``label_set`` and ``label`` its canonical form (for the example:
``excited`` → ``happy``). Without an open-set file v2 samples are unlabelled (``label`` None).

``label_set`` (default ``"r1omni"``, the vocabulary R1-Omni trains on; None for any canonical label)
matters: EMER words such as ``relaxed`` map to ``calm`` and ``worry`` to ``worried``, which R1-Omni's
vocabulary lacks; with the default such words are passed over.

EMER has no folds or splits; ``fold`` and ``split`` must be None.

Skip or error:

* skip: the clip's video (or, with ``audio_dir``, its audio) missing; v1, a label word outside
  ``label_set``; v2 with an open-set file, a clip missing from it or none of whose words maps into
  ``label_set``.
* error (:class:`CorpusError`): an annotation file or column missing, an empty name, a v1 emotion
  word that names no emotion at all, an open-set cell that is not a list of strings, a name listed
  twice.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from r1omni.data.common import (
    Collector,
    CorpusError,
    ImportResult,
    check_no_fold_or_split,
    read_csv_rows,
    require_dir,
    require_file,
    resolve_label_set,
)
from r1omni.labels import LabelSet, normalize_label
from r1omni.schema import Sample

__all__ = ["load", "VERSIONS", "parse_openset", "openset_label"]

VERSIONS = ("auto", "v1", "v2")
_ANNOTATIONS = {"v1": "gt-eng.csv", "v2": "final-EMER-reason.csv"}
_SUBDIRS = {"v1": "dataset-v1", "v2": "dataset-v2"}
_OPENSET = "check-openset.csv"


def parse_openset(text: str, path: Path, line: int) -> list[str]:
    """The word list of one ``openset`` cell (a Python list literal), validated."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise CorpusError(path, line, f"openset {text[:80]!r} is not a Python list literal") from None
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise CorpusError(path, line, f"openset {text[:80]!r} is not a list of strings")
    return [word.strip() for word in value if word.strip()]


def openset_label(words: list[str], labels: LabelSet | None) -> tuple[str, str] | None:
    """(word, canonical label) of the first word that maps into ``labels`` (any label when None)."""
    for word in words:
        label = normalize_label(word, labels)
        if label is not None:
            return word, label
    return None


def _find(root: Path, given: str | os.PathLike | None, name: str, subdir: str) -> Path | None:
    if given is not None:
        return require_file(root / given, "annotation")
    for candidate in (root / name, root / subdir / name):
        if candidate.is_file():
            return candidate
    return None


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         version: str = "auto", annotations: str | os.PathLike | None = None,
         openset: str | os.PathLike | None = None, label_set: str | None = "r1omni",
         video_dir: str = "video", video_suffix: str = ".mp4",
         audio_dir: str | None = None, audio_suffix: str = ".wav") -> ImportResult:
    """Import EMER v1 or v2 (see the module docstring for the layout, options and rules)."""
    check_no_fold_or_split("emer", fold, split)
    if version not in VERSIONS:
        raise ValueError(f"emer: version must be one of {', '.join(VERSIONS)}, got {version!r}")
    root = Path(os.path.abspath(root))
    require_dir(root, "EMER root")
    labels = resolve_label_set("emer", label_set)
    if version == "auto":
        if annotations is not None:
            raise ValueError("emer: with annotations= also say version='v1' or 'v2'")
        found = {v: _find(root, None, _ANNOTATIONS[v], _SUBDIRS[v]) for v in ("v1", "v2")}
        present = [v for v, path in found.items() if path is not None]
        if len(present) != 1:
            what = "both" if present else "neither"
            raise CorpusError(root, None, f"found {what} of {_ANNOTATIONS['v1']} (v1) and "
                                          f"{_ANNOTATIONS['v2']} (v2); pass version='v1' or 'v2'")
        version = present[0]
    csv_path = _find(root, annotations, _ANNOTATIONS[version], _SUBDIRS[version])
    if csv_path is None:
        raise CorpusError(root / _ANNOTATIONS[version], None, f"EMER {version} annotation file not found")

    opensets: dict[str, list[str]] | None = None
    if version == "v2":
        openset_path = _find(root, openset, _OPENSET, _SUBDIRS["v2"])
        if openset_path is not None:
            opensets = {}
            for line, row in read_csv_rows(openset_path, ("name", "openset")):
                if not row["name"]:
                    raise CorpusError(openset_path, line, "empty name")
                if row["name"] in opensets:
                    raise CorpusError(openset_path, line, f"name {row['name']!r} is listed twice")
                opensets[row["name"]] = parse_openset(row["openset"], openset_path, line)
    elif openset is not None:
        raise ValueError("emer: openset= applies to version v2 only")

    collector = Collector("emer")
    seen: set[str] = set()
    name_column = "names" if version == "v1" else "name"
    required = ("names", "emotions", "subtitles", "reasons") if version == "v1" else ("name", "chinese", "english")
    for line, row in read_csv_rows(csv_path, required):
        name = row[name_column]
        if not name:
            raise CorpusError(csv_path, line, f"empty {name_column}")
        if name in seen:
            raise CorpusError(csv_path, line, f"name {name!r} is listed twice")
        seen.add(name)
        video = root / video_dir / f"{name}{video_suffix}"
        audio = str(root / audio_dir / f"{name}{audio_suffix}") if audio_dir is not None else None
        meta: dict[str, object] = {"emer_version": version}
        if version == "v1":
            word = row["emotions"]
            if normalize_label(word) is None:
                raise CorpusError(csv_path, line, f"emotion {word!r} names no known emotion")
            label = normalize_label(word, labels)
            if label is None:
                collector.skip(name, video, f"emotion {normalize_label(word)!r} not in label set {label_set!r}")
                continue
            label_raw: str | None = word
            subtitle: str | None = row["subtitles"] or None
            reasoning = row["reasons"] or None
        else:
            label = label_raw = None
            subtitle = None
            reasoning = row["english"] or None
            meta["reasoning_zh"] = row["chinese"] or None
            if opensets is not None:
                if name not in opensets:
                    collector.skip(name, video, "no open-set labels for this clip")
                    continue
                meta["openset"] = opensets[name]
                found_label = openset_label(opensets[name], labels)
                if found_label is None:
                    collector.skip(name, video, f"no open-set word maps to a label in {label_set!r}")
                    continue
                label_raw, label = found_label
        if not video.is_file():
            collector.skip(name, video, "video file missing")
            continue
        if audio is not None and not os.path.isfile(audio):
            collector.skip(name, audio, "audio file missing")
            continue
        collector.use(Sample(
            id=name, corpus="emer", video=str(video), audio=audio, label=label, label_raw=label_raw,
            subtitle=subtitle, reasoning=reasoning, meta=meta,
        ))
    return collector.result()
