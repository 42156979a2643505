"""The one path from clips to answers: prepare -> generate -> parse -> check claims, under an explicit
label set, and the one record of an answer that every output is built from.

:func:`answer_clips` is what ``r1omni predict``, the server, ``r1omni eval``, timelines and attribution
call (attribution through :func:`generate_answers`, which also returns the token ids it scores), so one
model and one clip give one answer whichever door a user comes in by. :class:`Answer` is that answer:
the completion, its parse, the cue levels measured on the clip and each cue claim of the reasoning
with its verdict against them (:func:`check_answers`, the one place where cues are measured and claims
checked). The other records hold an ``Answer``, never a copy of its fields: :class:`Prediction` (a
file of ``predict``), :class:`r1omni.timeline.WindowPrediction`, the server's result, and the JSON of
each output (``predict --json``, the API's responses, ``windows.jsonl``, evaluation rows) starts from
:meth:`Answer.to_dict`, so a field added here reaches all of them.

:func:`predict_files` adds the file handling of ``predict``: decode with
:meth:`~r1omni.clips.ClipLoader.load_many`, batch, and one record per file, in order; a file that
cannot be read gets its ``error`` while the other files of the batch go on. Each record carries the
time spent per stage (decode, pre-process, generate) for its batch, divided evenly among the batch's
clips.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from r1omni import claims as cue_claims
from r1omni.claims import ClaimCheck
from r1omni.clips import ClipLoader
from r1omni.cues import clip_cues
from r1omni.labels import DEFAULT_LABEL_SET, LabelSet, get_label_set
from r1omni.media import MediaError, probe
from r1omni.models import ClipInput, Completions, Policy, SamplingConfig, load_policy
from r1omni.schema import Sample
from r1omni.template import parse_completion

__all__ = ["Answer", "Prediction", "answer_clips", "generate_answers", "check_answers", "parse_answer",
           "predict_files", "sample_for_path", "Model", "load_model"]


@dataclass
class Answer:
    """What one completion says, and how its reasoning holds up against the clip: the one answer record.

    Every output is built from :meth:`to_dict` (or :meth:`absent` where no answer was given), so a
    field added here reaches ``predict``, the API, timelines and evaluation rows alike."""

    output: str
    think: str | None
    answer: str | None
    label: str | None
    """Canonical label of the label set the caller passed; None when the answer names none of them."""
    format_ok: bool = False
    cue_levels: dict[str, str] = field(default_factory=dict)
    """The clip's cue levels the claims were checked against (measured on the clip, or its true cues
    where known); empty when claims were not checked."""
    claims: list[ClaimCheck] = field(default_factory=list)
    """Each cue claim of the reasoning with its verdict against :attr:`cue_levels` (supported /
    contradicted / not checkable; :func:`r1omni.claims.check_claims`)."""
    timings: dict[str, float] = field(default_factory=dict)
    """preprocess_seconds / generate_seconds: the batch's time divided evenly among its clips. Not in
    :meth:`to_dict`: the record holding the answer reports its own timings, these included."""

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready fields (claims as dicts), in declaration order, timings left out."""
        return {name: value for name, value in asdict(self).items() if name != "timings"}

    @classmethod
    def absent(cls) -> dict[str, Any]:
        """:meth:`to_dict`'s keys for a clip that got no answer: each field's default, else None."""
        empty = {}
        for spec in fields(cls):
            if spec.name == "timings":
                continue
            empty[spec.name] = (spec.default if spec.default is not MISSING
                                else spec.default_factory() if spec.default_factory is not MISSING else None)
        return empty


def parse_answer(text: str, labels: LabelSet | None) -> Answer:
    """Parse a completion against ``labels`` (None: any emotion the synonym table knows)."""
    parsed = parse_completion(text, labels)
    return Answer(output=text, think=parsed.think, answer=parsed.answer, label=parsed.label,
                  format_ok=parsed.format_ok)


def check_answers(answers: list[Answer], clips: list[ClipInput], true_cues: list[dict | None] | None = None) -> None:
    """Fill in each answer's :attr:`~Answer.cue_levels` and :attr:`~Answer.claims`: the clip's true cues
    where given (the benchmark's ``meta["cues"]``), else the cues measured on the decoded clip
    (:func:`r1omni.cues.clip_cues`). The one place where cues are measured and claims checked."""
    known = true_cues or [None] * len(clips)
    for answer, clip, cues in zip(answers, clips, known, strict=True):
        answer.cue_levels = cue_claims.cue_levels(cues or clip_cues(clip.waveform, clip.frames))
        answer.claims = cue_claims.check_claims(answer.think or "", answer.cue_levels)


def generate_answers(policy: Policy, clips: list[ClipInput], sampling: SamplingConfig,
                     labels: LabelSet | None) -> tuple[Completions, list[Answer]]:
    """One ``prepare`` + ``generate`` for all ``clips``; the completions and one :class:`Answer` per clip
    (claims not checked: see :func:`check_answers`)."""
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


def answer_clips(policy: Policy, clips: list[ClipInput], sampling: SamplingConfig, labels: LabelSet | None,
                 *, check_claims: bool = True) -> list[Answer]:
    """Answer every clip (one batch); ``labels`` is explicit so that every caller maps answers alike.
    ``check_claims``: measure each clip's cues and check the reasoning's claims (:func:`check_answers`);
    off where only the label counts (evaluation, counterfactual runs), as measuring costs time."""
    if not clips:
        return []
    answers = generate_answers(policy, clips, sampling, labels)[1]
    if check_claims:
        check_answers(answers, clips)
    return answers


@dataclass
class Prediction:
    """``predict``'s record of one file: its answer, or the error that kept it from being answered."""

    path: str
    reply: Answer | None = None
    """The file's :class:`Answer` (named so because ``Answer.answer`` is the ``<answer>`` text); None
    when ``error`` is set."""
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    """What decoding decided (:class:`~r1omni.clips.LoadedClips` notes): ``face_crop`` (whether a face
    was found, in how many frames, what the model saw) and ``transcript`` (the recognised speech, the
    subtitle the model read unless the sample had its own)."""

    def to_dict(self) -> dict:
        """``predict --json``'s line: the path, the answer's fields, the error, timings and notes."""
        answer = self.reply.to_dict() if self.reply is not None else Answer.absent()
        return {"path": self.path, **answer, "error": self.error, "timings": self.timings,
                "face_crop": self.notes.get("face_crop"), "transcript": self.notes.get("transcript")}


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
        for sample in chunk:
            error = loaded.error_of(sample)
            if error is not None:
                yield Prediction(path=sample.id, error=str(error), timings={"decode_seconds": decode_seconds})
                continue
            answer = next(answers)
            yield Prediction(path=sample.id, reply=answer, timings={"decode_seconds": decode_seconds, **answer.timings},
                             notes=loaded.notes[sample.id])


class Model:
    """A loaded policy with the options ``predict`` answers under: the Python face of ``r1omni predict``
    (``r1omni.load(folder).predict(paths)``), over :func:`predict_files`, the one answer path."""

    def __init__(self, policy: Policy, **options) -> None:
        unknown = sorted(set(options) - set(inspect.signature(predict_files).parameters) - {"policy", "paths"})
        if unknown:
            known = [name for name in inspect.signature(predict_files).parameters if name not in ("policy", "paths")]
            raise TypeError(f"unknown predict option(s) {unknown}; options are {known}")
        self.policy = policy
        self.options = options
        """:func:`predict_files`' keywords; its own defaults for the rest."""

    def predict(self, paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Prediction]:
        """One :class:`Prediction` per file, in order (a file that cannot be read gets its ``error``)."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        return list(predict_files(self.policy, [str(path) for path in paths], **self.options))


def load_model(folder: str | os.PathLike, device: str | None = None, **options) -> Model:
    """:func:`r1omni.models.load_policy` (on ``device``, the family's default when None) in eval mode,
    as a :class:`Model`; ``options`` are checked now, not at the first ``predict``."""
    policy = load_policy(folder, **({} if device is None else {"device": device}))
    policy.module.eval()
    return Model(policy, **options)
