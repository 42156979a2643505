"""A generic manifest (JSONL or CSV) of clips and labels as samples: the door for any corpus without an adapter.

``root`` is the manifest file itself: ``.jsonl`` (one JSON object per line) or ``.csv`` / ``.tsv``
(a header row, then one clip per row). Columns (JSON keys):

==============================  ===========================================================
column                          meaning
==============================  ===========================================================
``video`` / ``audio`` / ``path``  the media file (at least one; ``path`` is an audio file when
                                its suffix is an audio suffix, else a video). Relative paths
                                are resolved against the manifest's folder.
``label``                       the emotion word, any spelling ``normalize_label`` knows
                                (``Happiness`` → ``happy``); ``label_raw`` keeps it as written
                                unless a ``label_raw`` column is given.
``id``                          optional; default: the media path as written, without suffix
``reasoning``, ``subtitle``     optional text
``split``, ``fold``             optional; ``split=`` / ``fold=`` keep the rows equal to them
``corpus``                      optional; default the ``corpus`` option
``meta``                        JSONL only: an object merged into ``meta``
anything else                   kept in ``meta``
==============================  ===========================================================

A manifest written by :func:`r1omni.schema.write_samples` is a valid input.

Skip or error:

* skip: a media file that does not exist.
* error (:class:`CorpusError`): the manifest missing or of another type, a line that is not a JSON
  object, no ``label`` column (CSV) or no media column, a label word that names no emotion (or an
  empty label; both allowed with ``allow_unknown_labels=True``, which keeps ``label_raw`` and sets
  ``label`` to None), a malformed ``fold``, a row without ``split`` / ``fold`` when one is selected,
  an id listed twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r1omni.data.common import (
    Collector,
    CorpusError,
    ImportResult,
    read_csv_rows,
    require_file,
    resolve_label_set,
    text_lines,
)
from r1omni.labels import normalize_label
from r1omni.schema import Sample

__all__ = ["load", "AUDIO_SUFFIXES", "SUFFIXES"]

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac")
SUFFIXES = (".jsonl", ".csv", ".tsv")
_KNOWN = ("id", "video", "audio", "path", "label", "label_raw", "reasoning", "subtitle", "split", "fold",
          "corpus", "meta")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in text_lines(path, "manifest"):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise CorpusError(path, line, f"not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise CorpusError(path, line, f"expected a JSON object, got {type(row).__name__}")
        yield line, row


def _text(row: dict[str, Any], key: str, path: Path, line: int) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "label", "label_raw"):
        value = str(value)
    if not isinstance(value, str):
        raise CorpusError(path, line, f"{key!r} must be a string, got {type(value).__name__}")
    return value.strip() or None


def _fold(value: Any, path: Path, line: int) -> int | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise CorpusError(path, line, f"fold {value!r} is not a non-negative integer")
    return int(text)


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         allow_unknown_labels: bool = False, label_set: str | None = None,
         corpus: str = "manifest") -> ImportResult:
    """Import a JSONL / CSV manifest (see the module docstring for the columns and rules).

    ``label_set``: only labels of this set count as known (default: any canonical label).
    """
    path = Path(os.path.abspath(root))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CorpusError(path, None, f"a manifest must be one of {', '.join(SUFFIXES)}, got {suffix or 'no suffix'!r}")
    require_file(path, "manifest")
    labels = resolve_label_set(corpus, label_set)
    if fold is not None and (isinstance(fold, bool) or not str(fold).strip().isdigit()):
        raise ValueError(f"{corpus}: fold must be a non-negative integer or None, got {fold!r}")
    base = path.parent
    if suffix == ".jsonl":
        rows: Iterator[tuple[int, dict[str, Any]]] = _jsonl_rows(path)
    else:
        rows = read_csv_rows(path, ("label",), delimiter="\t" if suffix == ".tsv" else ",")
    collector = Collector(corpus)
    seen: dict[str, int] = {}
    for line, row in rows:
        row = {key: (None if value == "" else value) for key, value in row.items()}
        row_fold = _fold(row.get("fold"), path, line)
        row_split = _text(row, "split", path, line)
        if split is not None:
            if row_split is None:
                raise CorpusError(path, line, f"no split given; cannot select split={split!r}")
            if row_split != split:
                continue
        if fold is not None:
            if row_fold is None:
                raise CorpusError(path, line, f"no fold given; cannot select fold={fold!r}")
            if row_fold != int(fold):
                continue
        video, audio, generic = (_text(row, key, path, line) for key in ("video", "audio", "path"))
        if generic is not None:
            if video is not None or audio is not None:
                raise CorpusError(path, line, "give 'path' or 'video'/'audio', not both")
            if Path(generic).suffix.lower() in AUDIO_SUFFIXES:
                audio = generic
            else:
                video = generic
        if video is None and audio is None:
            raise CorpusError(path, line, "no media path: give 'video', 'audio' or 'path'")
        written = video if video is not None else audio
        sample_id = _text(row, "id", path, line) or os.path.splitext(written)[0]  # type: ignore[type-var]
        if sample_id in seen:
            raise CorpusError(path, line, f"id {sample_id!r} is listed again (first at line {seen[sample_id]}); "
                                          "add an 'id' column to tell clips apart")
        seen[sample_id] = line
        word = _text(row, "label", path, line)
        label = normalize_label(word, labels)
        if label is None and not allow_unknown_labels:
            anywhere = normalize_label(word)
            if word is None:
                problem = "empty label"
            elif anywhere is not None:
                problem = f"label {word!r} ({anywhere}) is not in label set {label_set!r}"
            else:
                problem = f"label {word!r} names no known emotion"
            raise CorpusError(path, line, f"{problem} (pass allow_unknown_labels=True to keep such rows unlabelled)")
        meta: dict[str, Any] = {key: value for key, value in row.items() if key not in _KNOWN and value is not None}
        extra_meta = row.get("meta")
        if extra_meta is not None:
            if not isinstance(extra_meta, dict):
                raise CorpusError(path, line, f"'meta' must be an object, got {type(extra_meta).__name__}")
            meta.update(extra_meta)
        video_path = os.path.normpath(base / video) if video is not None else None
        audio_path = os.path.normpath(base / audio) if audio is not None else None
        missing = next(((kind, p) for kind, p in (("video", video_path), ("audio", audio_path))
                        if p is not None and not os.path.exists(p)), None)
        if missing is not None:
            collector.skip(sample_id, missing[1], f"{missing[0]} file missing")
            continue
        collector.use(Sample(
            id=sample_id, corpus=_text(row, "corpus", path, line) or corpus, video=video_path, audio=audio_path,
            label=label, label_raw=_text(row, "label_raw", path, line) or word,
            split=row_split, fold=row_fold, subtitle=_text(row, "subtitle", path, line),
            reasoning=_text(row, "reasoning", path, line), meta=meta,
        ))
    return collector.result()
