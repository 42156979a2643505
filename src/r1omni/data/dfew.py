"""DFEW (Dynamic Facial Expression in the Wild): the single-labelled 5-fold protocol as samples.

On-disk layout expected under ``root`` (as distributed; only the parts read are listed)::

    Clip/original/00001.mp4 … 16372.mp4          full frames with the soundtrack, 5-digit ids
    Clip/clip_224x224/00001/ …                    optional: aligned 224x224 face frames per clip
    EmoLabel_DataSplit/train(single_labeled)/set_1.csv … set_5.csv
    EmoLabel_DataSplit/test(single_labeled)/set_1.csv … set_5.csv

The split CSVs have a header with the columns ``video_name,label`` (other columns, such as a pandas
index, are ignored). ``video_name`` is the clip id; pandas writes it as an integer (``1`` for clip
``00001``), so it is zero-padded to five digits. ``label`` is the official 1-based class:
1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear (``r1omni.labels.DFEW`` order).
``label_raw`` keeps that integer as written; ``label`` is the canonical word.

Selection: ``fold`` 1..5 and ``split`` train/test read those lists; ``fold=None`` reads the five
test lists, so every clip appears once with the fold whose test set holds it (see
:func:`r1omni.data.common.fold_split_pairs`).

Media: ``media="original"`` (default) points ``video`` at the mp4, which carries its own soundtrack
(``audio`` stays None). ``media="faces"`` points ``video`` at the face-frame folder and ``audio`` at
the original mp4 when it is there (R1-Omni itself used the original clips).

Skip or error:

* skip: the clip's media (mp4, or face folder with ``media="faces"``) is missing; the clip belongs to
  the protocol but is not on this disk.
* error (:class:`CorpusError`): a split CSV or column missing, an empty or non-numeric
  ``video_name``, a label outside 1..7 (a 0-based mirror would shift every class), a clip listed
  twice in the selection (a corrupt split would leak test clips into training).

Not read: ``Annotation/annotation.xlsx`` (per-clip votes, needs an xlsx reader) and the
16-frame ``clip_224x224_16f`` version.
"""

from __future__ import annotations

import os
from pathlib import Path

from r1omni.data.common import Collector, CorpusError, ImportResult, fold_split_pairs, read_csv_rows, require_dir
from r1omni.labels import DFEW
from r1omni.schema import Sample

__all__ = ["load", "NUM_FOLDS", "MEDIA", "split_csv_path"]

NUM_FOLDS = 5
MEDIA = ("original", "faces")
_SPLIT_DIRS = {"train": "train(single_labeled)", "test": "test(single_labeled)"}


def split_csv_path(root: str | os.PathLike, fold: int, split: str) -> Path:
    """Where the official list of ``split`` clips of ``fold`` lives under ``root``."""
    return Path(root) / "EmoLabel_DataSplit" / _SPLIT_DIRS[split] / f"set_{fold}.csv"


def _clip_id(value: str, path: Path, line: int) -> str:
    if not value:
        raise CorpusError(path, line, "empty video_name")
    if not value.isdigit():
        raise CorpusError(path, line, f"video_name {value!r} is not a clip number (expected e.g. 1 or 00001)")
    return value.zfill(5)


def _label(value: str, path: Path, line: int) -> str:
    if not value.isdigit() or not 1 <= int(value) <= len(DFEW):
        raise CorpusError(
            path, line,
            f"label {value!r} is not an official DFEW class 1..{len(DFEW)} "
            f"({', '.join(f'{i} {w}' for i, w in enumerate(DFEW.raw, 1))})",
        )
    return DFEW.labels[int(value) - 1]


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         media: str = "original") -> ImportResult:
    """Import DFEW's single-labelled clips (see the module docstring for the layout and rules).

    ``media``: ``"original"`` (mp4 with audio) or ``"faces"`` (the ``clip_224x224`` frame folders).
    """
    if media not in MEDIA:
        raise ValueError(f"dfew: media must be one of {', '.join(MEDIA)}, got {media!r}")
    root = Path(os.path.abspath(root))
    require_dir(root, "DFEW root")
    clips_dir = root / "Clip" / "original"
    faces_dir = root / "Clip" / "clip_224x224"
    collector = Collector("dfew")
    seen: dict[str, str] = {}
    for fold_k, split_name in fold_split_pairs("dfew", fold, split, NUM_FOLDS):
        csv_path = split_csv_path(root, fold_k, split_name)
        for line, row in read_csv_rows(csv_path, ("video_name", "label")):
            clip_id = _clip_id(row["video_name"], csv_path, line)
            label = _label(row["label"], csv_path, line)
            if clip_id in seen:
                raise CorpusError(csv_path, line, f"clip {clip_id} is listed again (first at {seen[clip_id]})")
            seen[clip_id] = f"{csv_path}:{line}"
            original = clips_dir / f"{clip_id}.mp4"
            if media == "faces":
                video = faces_dir / clip_id
                if not video.is_dir():
                    collector.skip(clip_id, video, "face-frame folder missing")
                    continue
                audio = str(original) if original.is_file() else None
            else:
                video = original
                if not video.is_file():
                    collector.skip(clip_id, video, "video file missing")
                    continue
                audio = None
            collector.use(Sample(
                id=clip_id, corpus="dfew", video=str(video), audio=audio, label=label,
                label_raw=row["label"], split=split_name, fold=fold_k,
                meta={"label_name": DFEW.raw[int(row["label"]) - 1], "media": media},
            ))
    return collector.result()
