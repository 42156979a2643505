"""The server's JSON shapes: the response models (also the OpenAPI document), the error table, the
request bodies the routes read by hand, and the mapping from the library's records to them.

Every response field is documented once here. A clip's response and a timeline window's line carry
the one answer record (:class:`r1omni.inference.Answer`) through :func:`answer_fields`, the one place
an answer becomes API JSON: its fields as they are, except its claims, which the API shows clause by
clause (``reasoning``, :func:`r1omni.explain.reasoning.segments`). :func:`openapi_components` lists
the schemas that the hand-written OpenAPI extras refer to, so that each ``$ref`` of ``/openapi.json``
resolves.

Not here: routes (``r1omni.serve.app``), the timeline stream (``r1omni.serve.stream``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from r1omni.claims import ClaimCheck
from r1omni.explain.attribution import ClipAttribution
from r1omni.explain.reasoning import AUDIO_WORDS, VISUAL_WORDS, segments
from r1omni.inference import Answer
from r1omni.labels import get_label_set
from r1omni.media import MediaInfo
from r1omni.serve.config import ServeConfig
from r1omni.serve.inputs import FLAG_WORDS, FLAGS, PathRequest

__all__ = ["Claim", "ReasoningSegment", "ModalityEffect", "Attribution", "Timings", "FaceCropSummary", "Word",
           "Transcript", "MediaSummary", "PredictResponse", "TimelineWindow", "ModelInfo", "Health", "ErrorBody",
           "ERRORS", "PREDICT_BODY", "TIMELINE_STREAM", "AnswerFields", "answer_fields", "attribution_body",
           "model_info", "openapi_components"]

_COMPONENT = "#/components/schemas/{model}"
# A form field is text: the words the server reads as a boolean (r1omni.serve.inputs.parse_flag).
_FORM_FLAG = {"type": "string", "enum": list(FLAG_WORDS), "default": "false",
              "description": "true or false (also 1/0, yes/no, on/off; any case)"}


class Claim(BaseModel):
    phrase: str
    """The wording of a cue claim ("the pitch is high"), lower case."""
    cue: str
    claimed: str
    measured: str | None
    """The level measured on the clip; None when that cue is not measured."""
    verdict: Literal["supported", "contradicted", "not checkable"]


class ReasoningSegment(BaseModel):
    text: str
    """A clause of the reasoning; the segments concatenated give the whole ``think`` text."""
    visual: bool
    """Mentions visual evidence (face, mouth, brows, eyes ...)."""
    audio: bool
    """Mentions audio evidence (voice, pitch, tone, speech ...)."""
    claims: list[Claim] = []
    """The clause's cue claims, each checked against the cues measured on the clip."""


class ModalityEffect(BaseModel):
    modality: Literal["video", "audio", "both"]
    present: bool
    """Whether the clip has this modality at all (an audio file has no video to remove)."""
    answer_contribution: float
    """log p(answer | all) - log p(answer | without it): > 0 means it supported the answer."""
    completion_contribution: float
    """The same over the whole completion (reasoning included)."""
    flipped: bool
    """Whether the answer changes without it."""
    label_without: str | None


class Attribution(BaseModel):
    method: str
    """How a modality is removed: "blank" (grey frames, silence) or "omit"."""
    decisive: str
    """The modality whose removal alone flips the answer: video, audio, both or neither."""
    modalities: list[ModalityEffect]
    """video, audio, and both removed together."""


class Timings(BaseModel):
    queue_seconds: float = 0.0
    decode_seconds: float = 0.0
    preprocess_seconds: float | None = None
    generate_seconds: float | None = None
    """Wall time of the generate call this clip shared with ``batch_size - 1`` others."""
    attribution_seconds: float | None = None
    """Wall time of the attribution run (its factual generation included)."""
    total_seconds: float
    """From the request's arrival to the response, upload included."""


class FaceCropSummary(BaseModel):
    face_found: bool
    face_frames: int
    """Sampled frames in which a face was found."""
    frames: int
    used: str
    """What the model saw: "face crop", or "whole frame (no face found)"."""


class Word(BaseModel):
    word: str
    start_seconds: float
    """Seconds from the start of the clip."""
    end_seconds: float
    probability: float


class Transcript(BaseModel):
    text: str
    """What was said; the model read it as the subtitle."""
    language: str
    language_probability: float
    words: list[Word]


class MediaSummary(BaseModel):
    duration_seconds: float | None
    has_video: bool
    has_audio: bool
    size_bytes: int


class AnswerFields(BaseModel):
    """The fields of :class:`r1omni.inference.Answer` that a clip's response and a window's line carry
    (:func:`answer_fields`). Fields not declared here are let through, so that a field added to
    ``Answer`` reaches the API at once; a test asks for each to be declared (and so documented) here."""

    model_config = ConfigDict(extra="allow")

    output: str | None
    """The raw completion (None: a window that could not be answered)."""
    think: str | None
    answer: str | None
    label: str | None
    """The answer as a canonical label of the model's label set, None when it names none."""
    format_ok: bool
    cue_levels: dict[str, str]
    """The cue levels measured on the clip (``r1omni.cues``) that the reasoning's claims are checked against."""
    reasoning: list[ReasoningSegment]
    """The reasoning clause by clause, with the evidence each cites and its claims checked (the answer's
    ``claims``, placed in their clauses)."""


class PredictResponse(AnswerFields):
    id: str
    output: str
    """The raw completion."""
    batch_size: int
    """How many clips shared the model call."""
    media: MediaSummary
    timings: Timings
    attribution: Attribution | None = None
    face_crop: FaceCropSummary | None = None
    """With ``face_crop``: whether a face was found and what the model saw."""
    transcript: Transcript | None = None
    """With ``transcribe``: the recognised speech."""


class TimelineWindow(AnswerFields):
    """One ``window`` line of the ``/v1/timeline`` stream."""

    type: Literal["window"] = "window"
    index: int
    start_seconds: float
    end_seconds: float
    transcript: str | None
    error: str | None
    done: int
    """Windows answered so far."""
    total: int


class ModelInfo(BaseModel):
    name: str
    family: str
    num_frames: int
    modalities: str
    label_set: str
    labels: list[str]
    reasoning_words: dict[str, list[str]]
    """The words that mark a reasoning clause as visual or audio evidence."""
    limits: dict[str, float | int]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    queued: int
    max_queue: int
    batches_run: int
    clips_answered: int


class ErrorBody(BaseModel):
    error: str
    message: str


ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "Malformed request"), (403, "Path outside the media root, or path requests disabled"),
    (404, "No such path under the media root"), (408, "The request body stopped arriving"),
    (413, "Upload or clip over the limits"), (415, "Body is neither multipart/form-data nor JSON"),
    (422, "Unreadable media or invalid request"), (507, "No space left on the server to store the upload"),
    (503, "Queue full or server shutting down"), (504, "No answer within the request timeout"))}
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "additionalProperties": False,
                                       "properties": {
        "file": {"type": "string", "format": "binary", "description": "A video or audio clip"},
        **{flag: _FORM_FLAG for flag in FLAGS}}}},
    "application/json": {"schema": {"$ref": _COMPONENT.format(model="PathRequest")}},
}}}
TIMELINE_STREAM = {200: {"description": "One JSON object per line: start, window (one per window), summary or error",
                          "content": {"application/x-ndjson": {
                              "schema": {"$ref": _COMPONENT.format(model="TimelineWindow")}}}}}


def openapi_components(*models: type[BaseModel]) -> dict[str, dict]:
    """The schemas :data:`PREDICT_BODY` and :data:`TIMELINE_STREAM` refer to (and ``models``, which other
    hand-written extras refer to), with the models they nest, for ``components/schemas``. FastAPI collects
    only the models a route declares; a model's own ``model_json_schema()`` puts its nested models under
    a local ``$defs`` whose ``#/$defs/...`` refs do not resolve once the schema sits inside the OpenAPI
    document."""
    components: dict[str, dict] = {}
    for model in (PathRequest, TimelineWindow, *models):
        schema = model.model_json_schema(ref_template=_COMPONENT)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _claim(check: ClaimCheck) -> Claim:
    return Claim(phrase=check.phrase, cue=check.cue, claimed=check.claimed, measured=check.actual,
                 verdict=check.verdict)


def answer_fields(answer: Answer | None) -> dict[str, Any]:
    """An answer as the API shows it (None: a window that could not be answered): every field of
    :meth:`Answer.to_dict` but ``claims``, which ``reasoning`` holds clause by clause, each clause's
    claims checked against the answer's cue levels.

    >>> from r1omni.inference import parse_answer
    >>> text = "<think>The brows drop, but the voice is calm.</think><answer>sad</answer>"
    >>> fields = answer_fields(parse_answer(text, None))
    >>> fields["label"], [(s.text, s.visual, s.audio) for s in fields["reasoning"]]
    ('sad', [('The brows drop, ', True, False), ('but the voice is calm.', False, True)])
    """
    fields = answer.to_dict() if answer is not None else Answer.absent()
    del fields["claims"]
    clauses = segments(answer.think, answer.cue_levels) if answer is not None else []
    fields["reasoning"] = [ReasoningSegment(text=c.text, visual=c.visual, audio=c.audio,
                                            claims=[_claim(check) for check in c.claims]) for c in clauses]
    return fields


def attribution_body(found: ClipAttribution, info: MediaInfo, method: str) -> Attribution:
    """A clip's modality attribution (``r1omni.explain.attribution``) as the API shows it."""
    present = {"video": info.has_video, "audio": info.has_audio, "both": info.has_video or info.has_audio}
    effects = []
    for modality, condition in (("video", "no_video"), ("audio", "no_audio"), ("both", "no_media")):
        values = found.conditions[condition]
        effects.append(ModalityEffect(modality=modality, present=present[modality],
                                      answer_contribution=values["answer_contribution"],
                                      completion_contribution=values["completion_contribution"],
                                      flipped=values["flipped"], label_without=values["pred"]))
    return Attribution(method=method, decisive=found.decisive, modalities=effects)


def model_info(family: str, num_frames: int, config: ServeConfig, name: str) -> ModelInfo:
    """``GET /v1/model``: what is served, the words that mark evidence, and the limits."""
    label_set = get_label_set(config.label_set)
    return ModelInfo(
        name=name, family=family, num_frames=num_frames,
        modalities=config.modalities, label_set=label_set.name, labels=list(label_set.labels),
        reasoning_words={"visual": list(VISUAL_WORDS), "audio": list(AUDIO_WORDS)},
        limits={"max_upload_bytes": config.max_upload_bytes, "max_duration_seconds": config.max_duration_seconds,
                "max_recording_seconds": config.max_recording_seconds,
                "max_timeline_windows": config.max_timeline_windows,
                "request_timeout_seconds": config.request_timeout_seconds, "max_queue": config.max_queue,
                "max_batch_size": config.max_batch_size})
