"""MAFW (Multi-modal Affective database in the Wild): the single-label 5-fold protocol as samples.

On-disk layout expected under ``root`` (as distributed; only the parts read are listed)::

    clips/00001.mp4 … 10045.mp4                                   5-digit ids, most with audio
    Train & Test Set/single/no_caption/set_1/train.txt, test.txt  … set_5/
    Train & Test Set/single/with_caption/set_1/train.txt, test.txt … set_5/   (``captions=True``)

``no_caption`` lines are ``00025.mp4 anger`` (whitespace-separated); ``with_caption`` lines are
``00025.mp4<TAB>anger<TAB><Chinese caption><TAB><English caption>``. Label words are MAFW's own
(``anger, disgust, fear, happiness, neutral, sadness, surprise, contempt, anxiety, helplessness,
disappointment``); ``label_raw`` keeps the word and ``label`` is the canonical form from
``r1omni.labels.MAFW`` (matched by word: MAFW has no official integer order).

Selection: ``fold`` 1..5 and ``split`` train/test read those lists; ``fold=None`` reads the five test
lists, so every clip appears once with the fold whose test set holds it.

Captions (``captions=True``) go to ``meta["caption_en"]`` / ``meta["caption_zh"]``, not to
``subtitle``: they describe the face and gestures ("The tight frown ...") rather than transcribe the
speech, so passing them as the text modality would hand the model a description of the answer.

Audio: 21 MAFW clips have no audio stream. They are kept; with ``check_audio=True`` each clip is
opened and ``meta["has_audio"]`` records whether it has a soundtrack (this costs one container open
per clip, so it is off by default).

Skip or error:

* skip: the clip's mp4 is missing; a compound label (``anger_sadness``, as in the compound split
  files) met while importing the single-label subset; with ``check_audio``, a clip that cannot be
  opened.
* error (:class:`CorpusError`): a split file missing, a line that is not ``<id>.mp4 <word>`` (or the
  four tab-separated fields with captions), a label word that names no MAFW class, a clip listed
  twice in the selection.

Not read: ``caption-label/*.txt``, the compound split and ``Labels/*.xlsx``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from r1omni.data.common import Collector, CorpusError, ImportResult, fold_split_pairs, require_dir, text_lines
from r1omni.labels import MAFW
from r1omni.media import MediaError, has_audio_stream
from r1omni.schema import Sample

__all__ = ["load", "NUM_FOLDS", "split_list_path"]

NUM_FOLDS = 5
_CLIP_NAME = re.compile(r"^(\d+)\.mp4$")


def split_list_path(root: str | os.PathLike, fold: int, split: str, captions: bool = False) -> Path:
    """Where the single-label list of ``split`` clips of ``fold`` lives under ``root``."""
    variant = "with_caption" if captions else "no_caption"
    return Path(root) / "Train & Test Set" / "single" / variant / f"set_{fold}" / f"{split}.txt"


def _parse_line(text: str, path: Path, line: int, captions: bool) -> tuple[str, str, tuple[str, str] | None]:
    """(clip id, label word, (zh, en) captions or None) of one split-file line."""
    if captions:
        fields = [part.strip() for part in text.split("\t")]
        if len(fields) != 4:
            raise CorpusError(path, line, f"expected 4 tab-separated fields (clip, label, zh, en), got {len(fields)}")
    else:
        fields = text.split()
        if len(fields) != 2:
            raise CorpusError(path, line, f"expected '<id>.mp4 <label>', got {text.strip()!r}")
    match = _CLIP_NAME.match(fields[0])
    if match is None:
        raise CorpusError(path, line, f"clip name {fields[0]!r} is not '<digits>.mp4'")
    clip_id = match.group(1).zfill(5)
    return clip_id, fields[1], (fields[2], fields[3]) if captions else None


def load(root: str | os.PathLike, fold: int | None = None, split: str | None = None, *,
         captions: bool = False, check_audio: bool = False) -> ImportResult:
    """Import MAFW's single-label clips (see the module docstring for the layout and rules).

    ``captions``: read the ``with_caption`` lists and keep the captions in ``meta``.
    ``check_audio``: open every clip and record ``meta["has_audio"]``.
    """
    root = Path(os.path.abspath(root))
    require_dir(root, "MAFW root")
    clips_dir = root / "clips"
    collector = Collector("mafw")
    seen: dict[str, str] = {}
    for fold_k, split_name in fold_split_pairs("mafw", fold, split, NUM_FOLDS):
        list_path = split_list_path(root, fold_k, split_name, captions)
        for line, text in text_lines(list_path, "MAFW split list"):
            if not text.strip():
                continue
            clip_id, word, caption = _parse_line(text, list_path, line, captions)
            if clip_id in seen:
                raise CorpusError(list_path, line, f"clip {clip_id} is listed again (first at {seen[clip_id]})")
            seen[clip_id] = f"{list_path}:{line}"
            video = clips_dir / f"{clip_id}.mp4"
            if "_" in word:
                unknown = [part for part in word.split("_") if MAFW.from_raw(part) is None]
                if unknown:
                    raise CorpusError(list_path, line, f"label {word!r}: {unknown} name no MAFW class")
                collector.skip(clip_id, video, "multi-label clip in a single-label import")
                continue
            label = MAFW.from_raw(word)
            if label is None:
                raise CorpusError(
                    list_path, line, f"label {word!r} names no MAFW class (known: {', '.join(MAFW.raw)})"
                )
            if not video.is_file():
                collector.skip(clip_id, video, "video file missing")
                continue
            meta: dict[str, object] = {}
            if caption is not None:
                meta["caption_zh"], meta["caption_en"] = caption
            if check_audio:
                try:
                    meta["has_audio"] = has_audio_stream(video)
                except MediaError:
                    collector.skip(clip_id, video, "video file cannot be opened")
                    continue
            collector.use(Sample(
                id=clip_id, corpus="mafw", video=str(video), label=label, label_raw=word,
                split=split_name, fold=fold_k, meta=meta,
            ))
    return collector.result()
