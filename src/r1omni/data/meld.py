"""MELD (Multimodal EmotionLines Dataset): utterances from *Friends* with their transcripts, as samples.

On-disk layout expected under ``root`` (``MELD.Raw`` unpacked; each split's folder may also sit in
a ``train/``, ``dev/`` or ``test/`` sub-folder)::

    train_sent_emo.csv   dev_sent_emo.csv   test_sent_emo.csv
    train_splits/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
    dev_splits_complete/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
    output_repeated_splits_test/dia{Dialogue_ID}_utt{Utterance_ID}.mp4

CSV columns: ``Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season,
Episode, StartTime, EndTime``. ``Utterance`` (the transcript) goes to ``subtitle``; ``Emotion``
(``neutral, joy, sadness, anger, surprise, fear, disgust``) to ``label_raw`` and, canonical
(``joy`` → ``happy``), to ``label``; speaker, sentiment, dialogue / utterance ids, season, episode and
times to ``meta``. Dialogue ids restart in every split, so sample ids are ``{split}_dia{D}_utt{U}``.

Splits are MELD's own: ``split`` is ``"train"``, ``"dev"`` or ``"test"`` (None: all three); there are
no folds.

Skip or error:

* skip: an utterance whose video is missing (the release lacks a few, e.g. one in dev).
* error (:class:`CorpusError`): a CSV or column missing, non-integer dialogue / utterance ids, an
  emotion word that names no emotion, an utterance listed twice in a split.
"""

from __future__ import annotations

import os
from pathlib import Path

from r1omni.data.common import Collector, CorpusError, ImportResult, check_split, read_csv_rows, require_dir
from r1omni.labels import normalize_label
from r1omni.schema import Sample

__all__ = ["load", "SPLITS", "VIDEO_DIRS"]

SPLITS = ("train", "dev", "test")
VIDEO_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
_REQUIRED = ("utterance", "emotion", "dialogue_id", "utterance_id")
_META_COLUMNS = {"speaker": "speaker", "sentiment": "sentiment", "season": "season", "episode": "episode",
                 "starttime": "start_time", "endtime": "end_time", "sr no.": "sr_no"}


def _video_dir(root: Path, split: str) -> Path:
    for candidate in (root / VIDEO_DIRS[split], root / split / VIDEO_DIRS[split]):
        if candidate.is_dir():
            return candidate
    return root / VIDEO_DIRS[split]  # absent: every clip of the split is then reported missing


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None) -> ImportResult:
    """Import MELD (see the module docstring for the layout and rules)."""
    if fold is not None:
        raise ValueError(f"meld: MELD has no folds; call with fold=None (got {fold!r})")
    check_split("meld", split, SPLITS)
    root = Path(os.path.abspath(root))
    require_dir(root, "MELD root")
    collector = Collector("meld")
    for split_name in (split,) if split else SPLITS:
        csv_path = root / f"{split_name}_sent_emo.csv"
        if not csv_path.is_file() and (root / split_name / csv_path.name).is_file():
            csv_path = root / split_name / csv_path.name
        video_dir = _video_dir(root, split_name)
        seen: dict[str, int] = {}
        for line, row in read_csv_rows(csv_path, _REQUIRED):
            dialogue, utterance = row["dialogue_id"], row["utterance_id"]
            if not dialogue.isdigit() or not utterance.isdigit():
                raise CorpusError(csv_path, line, f"Dialogue_ID {dialogue!r} / Utterance_ID {utterance!r} "
                                                  "are not integers")
            name = f"dia{int(dialogue)}_utt{int(utterance)}"
            if name in seen:
                raise CorpusError(csv_path, line, f"{name} is listed again (first at line {seen[name]})")
            seen[name] = line
            label = normalize_label(row["emotion"])
            if label is None:
                raise CorpusError(csv_path, line, f"emotion {row['emotion']!r} names no known emotion")
            sample_id = f"{split_name}_{name}"
            video = video_dir / f"{name}.mp4"
            if not video.is_file():
                collector.skip(sample_id, video, "video file missing")
                continue
            meta: dict[str, object] = {key: row[column] for column, key in _META_COLUMNS.items() if row.get(column)}
            meta.update(dialogue_id=int(dialogue), utterance_id=int(utterance))
            collector.use(Sample(
                id=sample_id, corpus="meld", video=str(video), label=label, label_raw=row["emotion"],
                split=split_name, subtitle=row["utterance"] or None, meta=meta,
            ))
    return collector.result()
