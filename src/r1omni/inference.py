"""The one path from clips to answers: prepare -> generate -> parse, under an explicit label set.

:func:`answer_clips` is what ``r1omni predict``, the server, ``r1omni eval`` and attribution call
(attribution through :func:`generate_answers`, which also returns the token ids it scores), so one
model and one clip give one answer whichever door a user comes in by. :func:`predict_files` adds
the file handling of ``predict``: decode with :meth:`~r1omni.clips.ClipLoader.load_many`, batch,
and one record per file, in order; a file that cannot be read gets its ``error`` while the other
files of the batch go on. Each record carries the time spent per stage (decode, pre-process,
generate) for its batch, divided evenly among the batch's clips, and each cue claim of its reasoning
with its verdict against the cues measured on the clip (:mod:`r1omni.cues`), so a user sees which
sentences to trust.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from r1omni.claims import check_claims, cue_levels
from r1omni.clips import ClipLoader
from r1omni.cues import clip_cues
from r1omni.labels import DEFAULT_LABEL_SET, LabelSet, get_label_set
from r1omni.media import MediaError, probe
from r1omni.models import ClipInput, Completions, Policy, SamplingConfig
from r1omni.schema import Sample
from r1omni.template import parse_completion

__all__ = ["Answer", "Prediction", "answer_clips", "generate_answers", "parse_answer", "predict_files",
           "sample_for_path"]


@dataclass
class Answer:
    """What one completion says: its reasoning and answer, the answer as a label of the label set."""

    output: str
    think: str | None
    answer: str | None
    label: str | None
    """Canonical label of the label set the caller passed; None when the answer names none of them."""
    format_ok: bool
    timings: dict[str, float] = field(default_factory=dict)
    """preprocess_seconds / generate_seconds: the batch's time divided evenly among its clips."""


def parse_answer(text: str, labels: LabelSet | None) -> Answer:
    """Parse a completion against ``labels`` (None: any emotion the synonym table knows)."""
    parsed = parse_completion(text, labels)
    return Answer(output=text, think=parsed.think, answer=parsed.answer, label=parsed.label,
                  format_ok=parsed.format_ok)


def generate_answers(policy: Policy, clips: list[ClipInput], sampling: SamplingConfig,
                     labels: LabelSet | None) -> tuple[Completions, list[Answer]]:
    """One ``prepare`` + ``generate`` for all ``clips``; the completions and one :class:`Answer` per clip."""
    tick = time.perf_counter()
    batch = policy.prepare(clips)
    prepared = time.perf_counter()
    completions = policy.generate(batch, num_return_sequences=1, sampling=sampling)
    generated = time.perf_counter()
    timings = {"preprocess_seconds": (prepared - tick) / len(clips),
               "generate_seconds": (generated - prepared) / len(clips)}
    answers = [parse_answer(text, labels) for text in completions.texts]
    for answer in answers:
        answer.timings = dict(timings)
    return completions, answers


def answer_clips(policy: Policy, clips: list[ClipInput], sampling: SamplingConfig,
                 labels: LabelSet | None) -> list[Answer]:
    """Answer every clip (one batch); ``labels`` is explicit so that every caller maps answers alike."""
    return generate_answers(policy, clips, sampling, labels)[1] if clips else []


@dataclass
class Prediction:
    """``predict``'s record of one file: its answer, or the error that kept it from being answered."""

    path: str
    think: str | None = None
    answer: str | None = None
    label: str | None = None
    format_ok: bool = False
    output: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    claims: list[dict] = field(default_factory=list)
    """Each cue claim of the reasoning with its verdict against the cues measured on the clip
    (supported / contradicted / not checkable; :func:`r1omni.claims.check_claims`)."""
    face_crop: dict | None = None
    """With ``face_crop``: whether a face was found and in how many frames, and what the model saw."""
    transcript: dict | None = None
    """With ``transcribe``: the recognised speech (text, language, words with times), the subtitle the
    model read unless the sample had its own."""

    def to_dict(self) -> dict:
        return asdict(self)


def sample_for_path(path: str | Path) -> Sample:
    """A bare sample for a file: its headers, not its name, decide (as the server decides): a file
    without a video stream (an ``.m4a``, or audio named ``.mp4``) feeds the audio path, anything else
    the video path. A file whose headers cannot be read is a video sample, whose decoding then
    reports why."""
    path = str(path)
    try:
        has_video = probe(path).has_video
    except MediaError:
        has_video = True
    return Sample(id=path, corpus="files", video=path) if has_video else Sample(id=path, corpus="files", audio=path)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict_files(policy: Policy, paths: Iterable[str | Path], modalities: str = "video_audio",
                  prompt: str = "inference", batch_size: int = 4, sampling: SamplingConfig | None = None,
                  label_set: str = DEFAULT_LABEL_SET, face_crop: bool = False,
                  transcribe: bool = False) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per path, in order (labels of ``label_set``, as the server maps them)."""
    sampling = sampling or SamplingConfig(max_new_tokens=512)
    labels = get_label_set(label_set)
    loader = ClipLoader.for_policy(policy, prompt=prompt, modalities=modalities, face_crop=face_crop,
                                    transcribe=transcribe)
    for chunk in _batches([sample_for_path(p) for p in paths], batch_size):
        loaded = loader.load_many(chunk)
        decode_seconds = sum(loaded.decode_seconds.values()) / len(chunk)
        answers = iter(answer_clips(policy, loaded.clips, sampling, labels))
        clips = iter(loaded.clips)
        for sample in chunk:
            error = loaded.error_of(sample)
            if error is not None:
                yield Prediction(path=sample.id, error=str(error), timings={"decode_seconds": decode_seconds})
                continue
            answer, clip = next(answers), next(clips)
            levels = cue_levels(clip_cues(clip.waveform, clip.frames))
            claims = [asdict(check) for check in check_claims(answer.think or "", levels)]
            timings = {"decode_seconds": decode_seconds, **answer.timings}
            yield Prediction(path=sample.id, **{**asdict(answer), "timings": timings}, claims=claims,
                             **loaded.notes[sample.id])
