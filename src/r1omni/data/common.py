"""What every corpus adapter returns and the few reading helpers they share.

An adapter turns a corpus folder into an :class:`ImportResult`: the usable :class:`~r1omni.schema.Sample`
records plus a :class:`Skip` for every record it found but could not use, so that nothing is ever
dropped silently (``read == used + len(skipped)`` always holds). Problems that make the whole import
untrustworthy (a missing annotation file, a malformed row, an unknown label word, a clip listed twice)
raise :class:`CorpusError` instead, naming the file, the line and the problem.

This module knows no corpus layout; it does no media decoding and never prints.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from r1omni.labels import LABEL_SETS, LabelSet, get_label_set
from r1omni.schema import Sample

__all__ = [
    "CorpusError",
    "Skip",
    "ImportResult",
    "SPLITS",
    "check_fold",
    "check_split",
    "check_no_fold_or_split",
    "fold_split_pairs",
    "require_dir",
    "resolve_label_set",
    "require_file",
    "read_csv_rows",
    "read_text",
    "text_lines",
    "Collector",
]

SPLITS = ("train", "test")


class CorpusError(ValueError):
    """A corpus that cannot be imported as it is; the message names the file, the line and the problem."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Skip:
    """A record the adapter found but did not turn into a sample.

    ``reason`` is a short phrase without the clip's id or path (those are the other fields), so that
    :meth:`ImportResult.reasons` can count how often each problem occurred.
    """

    id: str
    path: str | None
    reason: str


@dataclass
class ImportResult:
    """The outcome of importing one corpus selection.

    ``read`` counts the records the adapter found for the requested selection (fold, split and
    options); each of them is either in ``samples`` or in ``skipped``.
    """

    corpus: str
    samples: list[Sample] = field(default_factory=list)
    read: int = 0
    skipped: list[Skip] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    """Files found but outside the selection (not read), by what would select them: e.g. RAVDESS's
    audio-only wavs under the default ``modality="av"``. Reported so that nothing vanishes unseen."""

    def __post_init__(self) -> None:
        if self.read != len(self.samples) + len(self.skipped):
            raise ValueError(
                f"{self.corpus}: read {self.read} records but {len(self.samples)} used + "
                f"{len(self.skipped)} skipped; every record read must be used or skipped"
            )

    @property
    def used(self) -> int:
        return len(self.samples)

    def reasons(self) -> Counter[str]:
        """How many records were skipped for each reason."""
        return Counter(skip.reason for skip in self.skipped)

    def to_dict(self) -> dict:
        """The counts, each skipped record (id, path, reason) and what was left out, for ``--json`` (the
        samples themselves are the manifest)."""
        return {"corpus": self.corpus, "read": self.read, "used": self.used,
                "skipped": [vars(skip) for skip in self.skipped], "skip_reasons": dict(self.reasons()),
                "left_out": dict(self.left_out)}

    def summary(self) -> str:
        """One line per fact, for a caller to log or print: read / used / skipped and the reasons."""
        lines = [f"{self.corpus}: read {self.read}, used {self.used}, skipped {len(self.skipped)}"]
        for reason, count in sorted(self.reasons().items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {count} x {reason}")
        if self.left_out:
            lines.append(f"{self.corpus}: left out {sum(self.left_out.values())} file(s) outside the selection")
            for reason, count in sorted(self.left_out.items(), key=lambda item: (-item[1], item[0])):
                lines.append(f"  {count} x {reason}")
        return "\n".join(lines)


class Collector:
    """Accumulates samples and skips while an adapter walks its corpus, then builds the result."""

    def __init__(self, corpus: str) -> None:
        self.corpus = corpus
        self.samples: list[Sample] = []
        self.skipped: list[Skip] = []
        self.left_out: Counter[str] = Counter()

    def use(self, sample: Sample) -> None:
        self.samples.append(sample)

    def skip(self, record_id: str, path: str | os.PathLike | None, reason: str) -> None:
        self.skipped.append(Skip(id=record_id, path=None if path is None else str(path), reason=reason))

    def leave_out(self, reason: str) -> None:
        """A file outside the selection; ``reason`` names it and the option that would select it."""
        self.left_out[reason] += 1

    def result(self) -> ImportResult:
        return ImportResult(self.corpus, self.samples, len(self.samples) + len(self.skipped), self.skipped,
                            self.left_out)


def check_fold(corpus: str, fold: int | None, num_folds: int) -> int | None:
    """``fold`` as an int in 1..num_folds (or None); a clear ValueError otherwise."""
    if fold is None:
        return None
    if isinstance(fold, bool) or not isinstance(fold, (int, str)) or not str(fold).strip().isdigit():
        raise ValueError(f"{corpus}: fold must be an integer 1..{num_folds} or None, got {fold!r}")
    value = int(fold)
    if not 1 <= value <= num_folds:
        raise ValueError(f"{corpus}: fold must be in 1..{num_folds} or None, got {value}")
    return value


def check_split(corpus: str, split: str | None, allowed: tuple[str, ...] = SPLITS) -> str | None:
    if split is None or split in allowed:
        return split
    raise ValueError(f"{corpus}: split must be one of {', '.join(allowed)} or None, got {split!r}")


def check_no_fold_or_split(corpus: str, fold: object, split: object) -> None:
    """For corpora without an official protocol: selecting a fold or split is a caller error."""
    if fold is not None or split is not None:
        raise ValueError(
            f"{corpus}: this corpus has no official folds or splits; call with fold=None and split=None "
            f"(got fold={fold!r}, split={split!r})"
        )


def fold_split_pairs(corpus: str, fold: int | None, split: str | None, num_folds: int) -> list[tuple[int, str]]:
    """Which (fold, split) lists to read for a k-fold corpus whose folds partition the clips by test set.

    * ``fold=k``: the train and/or test list of fold k.
    * ``fold=None``: the test lists of all folds, so every clip appears once, with ``fold`` the fold
      whose test set holds it (and ``split`` "test": its role in that fold). Training lists overlap
      across folds, so ``fold=None, split="train"`` has no single meaning and is refused.
    """
    fold = check_fold(corpus, fold, num_folds)
    split = check_split(corpus, split)
    if fold is None:
        if split == "train":
            raise ValueError(
                f"{corpus}: fold=None reads every clip once from the test lists; each clip is in the "
                f"training list of {num_folds - 1} folds, so pick a fold for split='train'"
            )
        return [(k, "test") for k in range(1, num_folds + 1)]
    return [(fold, s) for s in ((split,) if split else SPLITS)]


def resolve_label_set(corpus: str, name: str | None) -> LabelSet | None:
    """The label set called ``name`` (None: no restriction); a ValueError lists the known names."""
    if name is None:
        return None
    try:
        return get_label_set(name)
    except KeyError:
        raise ValueError(f"{corpus}: unknown label set {name!r}; known: {', '.join(sorted(LABEL_SETS))}") from None


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise CorpusError(path, None, f"{what} folder not found")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CorpusError(path, None, f"{what} file not found")
    return path


def read_text(path: Path, what: str) -> str:
    """The whole of a UTF-8 text file (a byte-order mark is dropped); bytes that are not UTF-8 raise
    :class:`CorpusError` naming the line they are on."""
    data = require_file(path, what).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CorpusError(path, line, f"not UTF-8 text ({err.reason}); re-save the file as UTF-8") from None


def text_lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """``(line number, line without its end-of-line)`` for every line of a UTF-8 text file."""
    for line, text in enumerate(read_text(path, what).split("\n"), 1):
        yield line, text.rstrip("\r")


def read_csv_rows(path: Path, required: tuple[str, ...], delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header, as ``(line number, {column: stripped value})``.

    Header names are stripped and matched case-insensitively against ``required`` (and returned
    lower-case). Blank lines are skipped. A missing column, a row with more cells than the header or
    text that is not UTF-8 raises :class:`CorpusError`.
    """
    reader = csv.reader(io.StringIO(read_text(path, "annotation"), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise CorpusError(path, 1, "empty file; expected a header row") from None
    except csv.Error as err:
        raise CorpusError(path, reader.line_num, f"not valid CSV ({err})") from None
    columns = [name.strip().lower() for name in header]
    missing = [name for name in required if name not in columns]
    if missing:
        raise CorpusError(path, 1, f"missing column(s) {missing}; the header is {header}")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise CorpusError(path, reader.line_num, f"not valid CSV ({err})") from None
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(columns):
            raise CorpusError(path, reader.line_num,
                              f"{len(cells)} cells but the header has {len(columns)} columns")
        cells = cells + [""] * (len(columns) - len(cells))
        yield reader.line_num, {name: cell.strip() for name, cell in zip(columns, cells)}
