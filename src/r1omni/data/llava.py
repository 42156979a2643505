"""The LLaVA-style conversation JSON that R1-Omni / HumanOmni training reads: import and export.

Format (a ``.json`` list, or ``.jsonl`` with one entry per line)::

    {"video": "MER24/sample_00000967.mp4",
     "conversations": [{"from": "human", "value": "<video>\\n<audio>\\n<question>"},
                       {"from": "gpt",   "value": "<think>…</think>\\n<answer>anxious</answer>"}]}

Media paths are relative to a ``data_folder`` (the official ``--data_folder``; default here: the
JSON file's folder); ``"audio"`` may stand for or beside ``"video"``. The gpt value is either the
EMER cold-start form ``<think>…</think>\\n<answer>label</answer>`` or a bare label (the MAFW/DFEW
label-SFT data). Both directions go through ``r1omni.template``: import parses the gpt value with
:func:`~r1omni.template.parse_completion` (``label`` canonical, ``label_raw`` the answer text,
``reasoning`` the think part); export writes it with :func:`~r1omni.template.render_completion`.
The human value is ``"<video>\\n<audio>\\n"`` (``"<audio>\\n"`` for audio-only samples) followed by
the question; a subtitle is put before the question by :func:`~r1omni.template.with_subtitle` and
read back from that form on import. The question itself is kept in ``meta["question"]``.

Sample ids: an entry's ``"id"`` when present, else its media path without suffix; a repeated id
(the same clip twice, as oversampled training files have) gets ``#2``, ``#3`` … appended.

This format has no folds or splits (a file is one split); ``fold`` and ``split`` must be None.

Skip or error on import:

* skip: a media file that does not exist; an image-only entry (not a clip); a conversation with
  more than one human/gpt exchange.
* error (:class:`CorpusError`): the file missing or not valid JSON, an entry that is not an object
  or lacks ``conversations`` / a media key, turns that are not human then gpt with string values,
  a gpt answer that names no emotion (allowed with ``allow_unknown_labels=True``: ``label`` None).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from r1omni.atomic import atomic_write_text
from r1omni.data.common import (
    Collector,
    CorpusError,
    ImportResult,
    check_no_fold_or_split,
    read_text,
    require_file,
    resolve_label_set,
    text_lines,
)
from r1omni.schema import Sample
from r1omni.template import get_prompt, parse_completion, render_completion, with_subtitle

__all__ = ["load", "export", "to_entry", "VIDEO_TOKEN", "AUDIO_TOKEN"]

VIDEO_TOKEN = "<video>"
AUDIO_TOKEN = "<audio>"
_MEDIA_TOKENS = re.compile(r"^(?:\s*<(?:video|audio|image)>\s*\n?)+")
# Inverse of template.with_subtitle: 'The subtitle of the video reads: "<subtitle>"\n<prompt>'.
_SUBTITLE = re.compile(r'^The subtitle of the video reads: "(?P<subtitle>.*)"\n(?P<question>.*)$', re.DOTALL)
_MEDIA_KEYS = ("video", "audio")


def _entries(path: Path) -> Iterator[tuple[int | None, str, Any]]:
    """(line number or None, where-phrase, entry) for every entry of a .json list or .jsonl file."""
    if path.suffix.lower() == ".jsonl":
        for line, text in text_lines(path, "LLaVA conversation"):
            if text.strip():
                try:
                    yield line, "", json.loads(text)
                except json.JSONDecodeError as err:
                    raise CorpusError(path, line, f"not valid JSON ({err.msg})") from None
        return
    try:
        data = json.loads(read_text(path, "LLaVA conversation"))
    except json.JSONDecodeError as err:
        raise CorpusError(path, err.lineno, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise CorpusError(path, None, f"expected a JSON list of entries, got {type(data).__name__}")
    for index, entry in enumerate(data):
        yield None, f"entry {index}: ", entry


def _entry_error(path: Path, line: int | None, where: str, problem: str) -> CorpusError:
    return CorpusError(path, line, f"{where}{problem}")


def split_question(human: str) -> tuple[str, str | None]:
    """(question, subtitle or None) of a human turn, media tokens removed."""
    question = _MEDIA_TOKENS.sub("", human, count=1)
    match = _SUBTITLE.match(question)
    if match:
        return match.group("question"), match.group("subtitle")
    return question, None


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         data_folder: str | os.PathLike | None = None, allow_unknown_labels: bool = False,
         label_set: str | None = None, corpus: str = "llava") -> ImportResult:
    """Import a LLaVA conversation file (see the module docstring for the format and rules).

    ``data_folder``: the folder media paths are relative to (default: the file's folder).
    ``label_set``: only labels of this set count as known (default: any canonical label).
    """
    check_no_fold_or_split("llava", fold, split)
    path = Path(os.path.abspath(root))
    require_file(path, "LLaVA conversation")
    base = Path(os.path.abspath(data_folder)) if data_folder is not None else path.parent
    labels = resolve_label_set(corpus, label_set)
    collector = Collector(corpus)
    id_counts: dict[str, int] = {}
    for line, where, entry in _entries(path):
        fail = functools.partial(_entry_error, path, line, where)
        if not isinstance(entry, dict):
            raise fail(f"expected a JSON object, got {type(entry).__name__}")
        media = {key: entry[key] for key in _MEDIA_KEYS if key in entry}
        for key, value in media.items():
            if not isinstance(value, str) or not value:
                raise fail(f"{key!r} must be a non-empty string")
        turns = entry.get("conversations")
        if not isinstance(turns, list) or not all(
            isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str) for t in turns
        ):
            raise fail("'conversations' must be a list of {'from': str, 'value': str}")
        written = media.get("video", media.get("audio"))
        if written is None and "image" not in entry:
            raise fail("no media key: expected 'video' or 'audio'")
        entry_id = entry.get("id")
        if entry_id is not None and not isinstance(entry_id, (str, int)):
            raise fail(f"'id' must be a string, got {type(entry_id).__name__}")
        base_id = str(entry_id) if entry_id is not None else os.path.splitext(written or str(entry["image"]))[0]
        id_counts[base_id] = id_counts.get(base_id, 0) + 1
        sample_id = base_id if id_counts[base_id] == 1 else f"{base_id}#{id_counts[base_id]}"
        if written is None:
            collector.skip(sample_id, None, "image entry (not a clip)")
            continue
        if len(turns) > 2:
            collector.skip(sample_id, base / written, "multi-turn conversation")
            continue
        if len(turns) != 2 or turns[0]["from"] != "human" or turns[1]["from"] != "gpt":
            raise fail(f"expected a human turn then a gpt turn, got {[t['from'] for t in turns]}")
        question, subtitle = split_question(turns[0]["value"])
        parsed = parse_completion(turns[1]["value"], labels)
        if parsed.label is None and not allow_unknown_labels:
            raise fail(f"answer {parsed.answer[:80]!r} names no known emotion "
                       "(pass allow_unknown_labels=True to keep such entries unlabelled)")
        paths = {key: os.path.normpath(base / value) for key, value in media.items()}
        missing = next(((key, p) for key, p in paths.items() if not os.path.exists(p)), None)
        if missing is not None:
            collector.skip(sample_id, missing[1], f"{missing[0]} file missing")
            continue
        meta = {key: value for key, value in entry.items()
                if key not in ("id", "conversations", *_MEDIA_KEYS)}
        meta["question"] = question
        collector.use(Sample(
            id=sample_id, corpus=corpus, video=paths.get("video"), audio=paths.get("audio"),
            label=parsed.label, label_raw=parsed.answer, subtitle=subtitle, reasoning=parsed.think, meta=meta,
        ))
    return collector.result()


def to_entry(sample: Sample, data_folder: str | os.PathLike, prompt: str | None = None) -> dict[str, Any]:
    """One conversation entry for ``sample`` (media paths relative to ``data_folder``).

    ``prompt``: a prompt name of ``r1omni.template.PROMPTS`` or the question text; None picks
    ``"train"`` (question + format instruction) for samples with reasoning and ``"label"`` (the bare
    question) for label-only samples, as R1-Omni's cold-start and label-SFT data do.
    """
    if sample.label is None:
        raise ValueError(f"sample {sample.id!r} has no label; a training conversation needs an answer")
    question = get_prompt(prompt if prompt is not None else ("train" if sample.reasoning else "label"))
    tokens = f"{VIDEO_TOKEN}\n{AUDIO_TOKEN}\n" if sample.video is not None else f"{AUDIO_TOKEN}\n"
    entry: dict[str, Any] = {"id": sample.id}
    for key in _MEDIA_KEYS:
        value = getattr(sample, key)
        if value is not None:
            entry[key] = os.path.relpath(value, data_folder) if os.path.isabs(value) else value
    entry["conversations"] = [
        {"from": "human", "value": tokens + with_subtitle(question, sample.subtitle)},
        {"from": "gpt", "value": render_completion(sample.reasoning, sample.label)},
    ]
    return entry


def export(samples: Iterable[Sample], path: str | os.PathLike, *, data_folder: str | os.PathLike | None = None,
           prompt: str | None = None) -> Path:
    """Write ``samples`` as a LLaVA conversation file (``.json`` list or ``.jsonl``), atomically.

    ``data_folder``: media paths are written relative to it (default: the output file's folder).
    """
    path = Path(path)
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise ValueError(f"{path}: a LLaVA conversation file must end in .json or .jsonl")
    folder = os.path.abspath(data_folder) if data_folder is not None else os.path.abspath(path.parent)
    entries = [to_entry(sample, folder, prompt) for sample in samples]
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
    else:
        text = json.dumps(entries, ensure_ascii=False, indent=1) + "\n"
    atomic_write_text(path, text)
    return path
