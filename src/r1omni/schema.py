"""The records every stage exchanges: :class:`Sample` (one clip and its annotations) and JSONL I/O.

A manifest is a JSONL file of samples; every corpus adapter, the benchmark generator and the
import command write one, and training, evaluation and explanation read it. Paths inside a
manifest may be relative: they are resolved against the manifest's folder when read.

An append-only log (training metrics and samples, evaluation predictions) is JSONL too, but written
a line at a time, so a kill or a full disk can leave its last line cut: :func:`read_log` drops such
a line (with a warning naming the file and line) and refuses damage anywhere else.

Standard library only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from r1omni.atomic import atomic_write_text

__all__ = ["Sample", "read_jsonl", "read_log", "write_jsonl", "read_samples", "write_samples", "ManifestError"]

logger = logging.getLogger(__name__)


class ManifestError(ValueError):
    """A manifest line that cannot be turned into a sample; the message names file and line."""


@dataclass
class Sample:
    """One clip with its annotations.

    ``label`` is canonical (see ``r1omni.labels``) or None for unlabelled clips; ``label_raw`` is the
    label exactly as the corpus distributes it (an integer code, a word, a filename field).
    """

    id: str
    corpus: str
    video: str | None = None
    audio: str | None = None
    label: str | None = None
    label_raw: str | None = None
    split: str | None = None
    fold: int | None = None
    subtitle: str | None = None
    reasoning: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("Sample.id must be a non-empty string")
        if self.video is None and self.audio is None:
            raise ValueError(f"sample {self.id!r} has neither a video nor an audio path")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], base_dir: str | os.PathLike | None = None) -> "Sample":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(row) - known)
        if unknown:
            raise ValueError(f"unknown sample field(s) {unknown}; known: {sorted(known)}")
        if "id" not in row or "corpus" not in row:
            raise ValueError("a sample needs at least 'id' and 'corpus'")
        row = dict(row)
        row["id"] = str(row["id"])
        if row.get("fold") is not None:
            row["fold"] = int(row["fold"])
        if base_dir is not None:
            for key in ("video", "audio"):
                if row.get(key) and not os.path.isabs(row[key]):
                    row[key] = os.path.normpath(os.path.join(base_dir, row[key]))
        return cls(**row)

    @property
    def media_path(self) -> str:
        """The file to decode: the video when there is one, else the audio."""
        return self.video if self.video is not None else self.audio  # type: ignore[return-value]


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line; :class:`ManifestError` names the file
    and line of anything else (a line that is not UTF-8, not JSON or not an object), and says so when
    ``path`` is a folder."""
    if Path(path).is_dir():
        raise ManifestError(f"{path}: is a folder; give the manifest file (JSONL) inside it")
    rows = []
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ManifestError(f"{path}:{line_no}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                                    f"{err.start + 1}); save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL log ([] when there is no file yet).

    A last line that does not parse is a write cut short (a kill, a full disk): it is dropped with a
    warning naming the file and line, and whoever resumes writes its row again. A bad line before
    the last cannot come from an interrupted append, so it raises :class:`ManifestError` naming the
    file and line rather than silently losing the rows after it.
    """
    path = Path(path)
    if not path.exists():
        return []
    numbered = [(n, line) for n, line in enumerate(path.read_bytes().split(b"\n"), 1) if line.strip()]
    rows = []
    for position, (line_no, line) in enumerate(numbered):
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            if position == len(numbered) - 1:
                logger.warning("%s:%d: dropping a torn last line (%s); its row is written again", path, line_no, err)
                break
            raise ManifestError(f"{path}:{line_no}: not valid JSON ({err}); only the last line of a log can be "
                                "cut by an interrupted write, so this file is damaged: repair or delete that "
                                "line") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows atomically (the file appears whole or not at all)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_text(path, text)


def read_samples(path: str | os.PathLike) -> list[Sample]:
    """Samples of a manifest, relative media paths resolved against the manifest's folder."""
    base = Path(path).resolve().parent
    samples = []
    for line_no, row in enumerate(read_jsonl(path), 1):
        try:
            samples.append(Sample.from_dict(row, base_dir=base))
        except (ValueError, TypeError) as err:
            raise ManifestError(f"{path}: sample {line_no}: {err}") from None
    return samples


def write_samples(path: str | os.PathLike, samples: Iterable[Sample], relative_to: str | os.PathLike | None = None) -> None:
    """Write a manifest; with ``relative_to`` media paths are stored relative to that folder."""
    rows = []
    for sample in samples:
        row = sample.to_dict()
        if relative_to is not None:
            for key in ("video", "audio"):
                if row[key]:
                    row[key] = os.path.relpath(row[key], relative_to)
        rows.append(row)
    write_jsonl(path, rows)
