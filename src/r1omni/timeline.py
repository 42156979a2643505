"""A long recording as a timeline: one answer per window, the share of time per emotion, the changes, a plot.

A minutes-long session recording or call gets one answer per window instead of one for the whole
file: :func:`timeline_spans` cuts it into fixed windows (with an overlap) or into utterances found
by the voice-activity detector; :func:`predict_timeline` decodes the windows one at a time in a
single pass (:func:`r1omni.media.windows.read_windows`), turns each into model input the way the
one decode loop does for a file (:meth:`r1omni.clips.ClipLoader.from_media`: face crop,
transcript as subtitle, modalities) and answers them in batches through the one answer path
(:func:`r1omni.inference.answer_clips`). Memory is bounded by the batch, not by the recording.
:func:`summarize_timeline` gives the share of time per label (overlapping windows split their
overlap at its middle) and each change of label; :func:`write_timeline` writes ``windows.jsonl``,
``summary.json`` and ``timeline.png``; :func:`output_names` gives each recording of a batch its own
folder for them, and :func:`predict_recordings` does all of that for ``r1omni predict --segment``.
Each window's record holds its :class:`~r1omni.inference.Answer` (cue levels and checked claims
included), the one answer record of every output.

Not here: tracking who speaks (one person per recording is assumed), smoothing labels over time.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from r1omni.atomic import atomic_write_bytes, atomic_write_text
from r1omni.clips import ClipLoader
from r1omni.inference import Answer, answer_clips
from r1omni.labels import LabelSet
from r1omni.media import MediaError, probe
from r1omni.media.windows import fixed_spans, read_windows, utterance_spans
from r1omni.models import Policy, SamplingConfig
from r1omni.models.placement import placement
from r1omni.schema import Sample

__all__ = ["SPLITS", "TimelineOptions", "WindowPrediction", "RecordingTimeline", "timeline_spans",
           "predict_timeline", "predict_recordings", "summarize_timeline", "write_timeline", "output_names",
           "TooManyWindows", "fixed_window_count", "NO_LABEL", "MIN_WINDOW_SECONDS", "MAX_OVERLAP_SHARE"]

SPLITS = ("fixed", "speech")
MIN_WINDOW_SECONDS = 0.1
"""Shortest window: less holds about one frame, and a window start would not move past float rounding."""
MAX_OVERLAP_SHARE = 0.9
"""Most of a window its successor may overlap: windows start at least a tenth of a window apart, so the
work per second of recording is bounded (4 s windows overlapping by 3.999 s would be 1,000 per second)."""
NO_LABEL = "(none)"
"""How a window whose answer names no label of the label set is counted in the summary."""


@dataclass
class TimelineOptions:
    """How a recording is cut into windows."""

    window_seconds: float = 4.0
    """Length of a window (with ``split="speech"``: the longest a window of one utterance may be); at
    least :data:`MIN_WINDOW_SECONDS`."""
    overlap_seconds: float = 0.0
    """Overlap of consecutive fixed windows; at most :data:`MAX_OVERLAP_SHARE` of a window."""
    split: str = "fixed"
    """"fixed" (windows one after the other) or "speech" (utterances from the voice-activity detector)."""
    batch_size: int = 4
    """Windows answered by one model call; what bounds memory."""
    max_windows: int | None = None
    """Most windows one recording may be cut into (None: no limit); what bounds the work of one request
    to a server (``ServeConfig.max_timeline_windows``)."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not (math.isfinite(self.window_seconds) and self.window_seconds >= MIN_WINDOW_SECONDS):
            raise ValueError(f"window_seconds must be a finite number of seconds >= {MIN_WINDOW_SECONDS}, "
                             f"got {self.window_seconds}")
        most = MAX_OVERLAP_SHARE * self.window_seconds
        if not (math.isfinite(self.overlap_seconds) and 0 <= self.overlap_seconds <= most):
            raise ValueError(f"overlap_seconds must be in [0, {MAX_OVERLAP_SHARE:g} x window_seconds] = [0, {most:g}], "
                             f"got {self.overlap_seconds}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1 or None, got {self.max_windows}")

    def check_count(self, windows: int) -> None:
        """Raise :class:`TooManyWindows` when a recording cut into ``windows`` windows is over ``max_windows``."""
        if self.max_windows is not None and windows > self.max_windows:
            raise TooManyWindows(windows, self.max_windows)


class TooManyWindows(ValueError):
    """A recording would be cut into more windows than :attr:`TimelineOptions.max_windows` allows."""

    def __init__(self, windows: int, limit: int) -> None:
        self.windows, self.limit = windows, limit
        super().__init__(f"the recording would be cut into {windows:,} windows; the limit is {limit:,} "
                         "(use longer windows or less overlap)")


def fixed_window_count(duration_seconds: float, options: TimelineOptions) -> int:
    """About how many fixed windows ``duration_seconds`` gives (one more at most), without listing them."""
    hop = options.window_seconds - options.overlap_seconds
    return max(1, math.ceil(max(duration_seconds - options.overlap_seconds, 0.0) / hop))   # hop >= 0.01 s


@dataclass
class WindowPrediction:
    """One window of a recording: its times and its :class:`~r1omni.inference.Answer` (``error`` set: the
    window could not be answered, and ``reply`` is None)."""

    index: int
    start_seconds: float
    end_seconds: float
    reply: Answer | None = None
    notes: dict = field(default_factory=dict)
    """What decoding the window decided (``face_crop``, ``transcript``; :meth:`ClipLoader.from_media`)."""
    error: str | None = None

    @property
    def label(self) -> str | None:
        """The label the window counts as in the summary (None: unanswered, or no label named)."""
        return self.reply.label if self.reply is not None else None

    @property
    def transcript(self) -> str | None:
        """The recognised speech of the window (with ``transcribe``)."""
        return (self.notes.get("transcript") or {}).get("text")

    def to_dict(self) -> dict:
        """A line of ``windows.jsonl``: the window's times, the answer's fields, its transcript and error."""
        answer = self.reply.to_dict() if self.reply is not None else Answer.absent()
        return {"index": self.index, "start_seconds": self.start_seconds, "end_seconds": self.end_seconds,
                **answer, "transcript": self.transcript, "error": self.error}


def timeline_spans(path: str | os.PathLike, options: TimelineOptions) -> list[tuple[float, float]]:
    """The windows of ``path`` as ``(start, end)`` seconds (see :class:`TimelineOptions`)."""
    if options.split == "speech":
        spans = utterance_spans(path, options.window_seconds)
    else:
        duration = probe(path).duration_seconds
        if not duration:
            raise MediaError(path, "the container states no duration, so it cannot be cut into fixed windows; "
                                   "use split='speech'")
        options.check_count(fixed_window_count(duration, options))   # before listing 596,002 of them
        spans = fixed_spans(duration, options.window_seconds, options.overlap_seconds)
    options.check_count(len(spans))
    return spans


def predict_timeline(policy: Policy, path: str | os.PathLike, options: TimelineOptions, loader: ClipLoader,
                     sampling: SamplingConfig, labels: LabelSet | None,
                     progress: Callable[[int, int], None] | None = None) -> Iterator[WindowPrediction]:
    """Yield one :class:`WindowPrediction` per window of ``path``, in time order, batch by batch.

    ``loader`` decides what the model reads (prompt, modalities, face crop, transcript); its
    ``num_frames`` is the count decoded per window. ``progress(done, total)`` follows the windows.
    """
    spans = timeline_spans(path, options)
    sample = Sample(id=str(path), corpus="files", video=str(path))
    windows = read_windows(path, spans, loader.num_frames, with_video=loader.modalities != "audio",
                           with_audio=loader.modalities != "video" or loader.transcribe)
    if progress is not None:
        progress(0, len(spans))
    batch: list = []
    done = 0
    for window in windows:
        batch.append(window)
        if len(batch) == options.batch_size:
            yield from _answer(policy, batch, sample, loader, sampling, labels)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(done, len(spans))
    if batch:
        yield from _answer(policy, batch, sample, loader, sampling, labels)
        if progress is not None:
            progress(len(spans), len(spans))


def _answer(policy: Policy, windows: list, sample: Sample, loader: ClipLoader, sampling: SamplingConfig,
            labels: LabelSet | None) -> Iterator[WindowPrediction]:
    rows, clips = [], []
    for window in windows:
        row = WindowPrediction(window.index, window.start_seconds, window.end_seconds)
        try:
            clip, row.notes = loader.from_media(sample, window.frames, window.waveform)
        except MediaError as err:
            row.error = f"window {window.start_seconds:.1f}-{window.end_seconds:.1f} s: {err.reason}"
        else:
            clips.append((row, clip))
        rows.append(row)
    answers = answer_clips(policy, [clip for _, clip in clips], sampling, labels)
    for (row, _), answer in zip(clips, answers, strict=True):
        row.reply = answer
    yield from rows


@dataclass
class RecordingTimeline:
    """One recording of :func:`predict_recordings`: its windows, summary and written files, or the error
    that kept it from being read (``summary`` None, ``files`` empty)."""

    path: str
    rows: list[WindowPrediction]
    summary: dict | None
    files: dict[str, Path]
    error: str | None = None


def predict_recordings(policy: Policy, paths: list[str | os.PathLike], options: TimelineOptions, loader: ClipLoader,
                       sampling: SamplingConfig, labels: LabelSet | None, out_dir: str | os.PathLike,
                       on_window: Callable[[str, WindowPrediction], None] | None = None,
                       progress: Callable[[str, int, int], None] | None = None) -> Iterator[RecordingTimeline]:
    """``predict --segment``: a timeline per recording, written to its own folder under ``out_dir``
    (:func:`output_names`), yielded as each recording is done. A recording that cannot be read gives a
    :class:`RecordingTimeline` with its ``error`` and the others go on. ``on_window(path, row)`` sees
    each window as it is answered, ``progress(path, done, total)`` follows each recording's windows."""
    for path, name in zip(paths, output_names(paths)):
        path = str(path)
        rows: list[WindowPrediction] = []
        track = (lambda done, total, path=path: progress(path, done, total)) if progress is not None else None
        try:
            for row in predict_timeline(policy, path, options, loader, sampling, labels, progress=track):
                rows.append(row)
                if on_window is not None:
                    on_window(path, row)
        except MediaError as err:
            yield RecordingTimeline(path, rows, None, {}, error=str(err))
            continue
        summary = {**summarize_timeline(rows), "runs_on": placement(policy.module)}
        files = write_timeline(Path(out_dir) / name, rows, summary, title=Path(path).name)
        yield RecordingTimeline(path, rows, summary, files)


def output_names(paths: list[str | os.PathLike]) -> list[str]:
    """A distinct folder name per recording, so that recordings answered together never overwrite each
    other's timeline: the file's stem (``session`` for ``session.mp4``) when no other input shares it,
    else its whole name (``a.mkv``, ``a.webm``), and ``-2``, ``-3`` ... after inputs that share even
    that (one name in two folders, or one file given twice).

    >>> output_names(["x/session.mp4", "a.mkv", "a.webm", "x/b.mp4", "y/b.mp4"])
    ['session', 'a.mkv', 'a.webm', 'b.mp4', 'b.mp4-2']
    """
    stems = Counter(Path(path).stem for path in paths)
    names = [(Path(path).stem if stems[Path(path).stem] == 1 else Path(path).name) or "recording" for path in paths]
    counts = Counter(names)
    taken = {name for name in names if counts[name] == 1}
    unique = []
    for name in names:
        candidate, number = name, 1
        while counts[name] > 1 and candidate in taken:
            number += 1
            candidate = f"{name}-{number}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def _owned_spans(rows: list[WindowPrediction]) -> list[tuple[float, float]]:
    """The part of the recording each window speaks for: overlaps are split at their middle."""
    owned = []
    for i, row in enumerate(rows):
        start, end = row.start_seconds, row.end_seconds
        if i > 0 and rows[i - 1].end_seconds > start:
            start = (start + rows[i - 1].end_seconds) / 2
        if i + 1 < len(rows) and rows[i + 1].start_seconds < end:
            end = (rows[i + 1].start_seconds + end) / 2
        owned.append((start, end))
    return owned


def summarize_timeline(rows: list[WindowPrediction]) -> dict:
    """Share of the answered time per label, the changes of label in time order, and the counts.

    >>> from r1omni.inference import Answer
    >>> said = lambda label: Answer(output=label, think=None, answer=label, label=label)
    >>> rows = [WindowPrediction(0, 0, 4, said("happy")), WindowPrediction(1, 4, 8, said("happy")),
    ...         WindowPrediction(2, 8, 10, said("sad"))]
    >>> summary = summarize_timeline(rows)
    >>> summary["share_of_time"], summary["changes"]
    ({'happy': 0.8, 'sad': 0.2}, [{'at_seconds': 8, 'from': 'happy', 'to': 'sad'}])
    """
    answered = [row for row in rows if row.error is None]
    seconds: dict[str, float] = {}
    for row, (start, end) in zip(answered, _owned_spans(answered)):
        name = row.label or NO_LABEL
        seconds[name] = seconds.get(name, 0.0) + max(end - start, 0.0)
    total = sum(seconds.values())
    changes = []
    owned = _owned_spans(answered)
    for (before, after), (start, _) in zip(zip(answered, answered[1:]), owned[1:]):
        if (before.label or NO_LABEL) != (after.label or NO_LABEL):
            changes.append({"at_seconds": round(start, 3), "from": before.label or NO_LABEL,
                            "to": after.label or NO_LABEL})
    share = {name: round(value / total, 4) for name, value in sorted(seconds.items(), key=lambda kv: -kv[1])}
    return {"windows": len(rows), "answered": len(answered), "failed": len(rows) - len(answered),
            "seconds_answered": round(total, 3), "share_of_time": share,
            "dominant": next(iter(share), None), "changes": changes}


def write_timeline(out_dir: str | os.PathLike, rows: list[WindowPrediction], summary: dict,
                   title: str = "") -> dict[str, Path]:
    """``windows.jsonl``, ``summary.json`` and ``timeline.png`` in ``out_dir`` (each written atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"windows": out / "windows.jsonl", "summary": out / "summary.json", "plot": out / "timeline.png"}
    atomic_write_text(paths["windows"], "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    atomic_write_bytes(paths["plot"], _timeline_png(rows, summary, title))
    return paths


def _timeline_png(rows: list[WindowPrediction], summary: dict, title: str) -> bytes:
    """One bar per window, coloured by label, over the recording's time axis; failed windows hatched."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    from r1omni.plots import figure, png_bytes

    names = list(summary["share_of_time"]) or [NO_LABEL]
    palette = colormaps["tab10"]
    colour = {name: ("#bbbbbb" if name == NO_LABEL else palette(i % 10)) for i, name in enumerate(names)}
    answered = [row for row in rows if row.error is None]
    fig, ax = figure(figsize=(10, 1.9))
    for row, (start, end) in zip(answered, _owned_spans(answered)):
        ax.broken_barh([(start, end - start)], (0, 1), facecolors=colour[row.label or NO_LABEL], edgecolor="white")
    for row in rows:
        if row.error is not None:
            ax.broken_barh([(row.start_seconds, row.end_seconds - row.start_seconds)], (0, 1), facecolors="none",
                           edgecolor="black", hatch="//")
    ax.set_yticks([])
    end = max((row.end_seconds for row in rows), default=1.0)
    ax.set_xlim(0, end)
    ax.set_xlabel("seconds")
    handles = [Rectangle((0, 0), 1, 1, color=colour[name]) for name in names]
    ax.legend(handles, [f"{name} {summary['share_of_time'].get(name, 0):.0%}" for name in names],
              loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=min(len(names), 7), frameon=False)
    ax.set_title(title or f"{len(rows)} windows, {len(summary['changes'])} changes of emotion", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig, dpi=100)
