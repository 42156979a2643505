"""The server's JSON shapes: the response models (also the OpenAPI document), the error table, the
request bodies the routes read by hand, and the reasoning cut into checked clauses.

Every response field is documented once here. :func:`openapi_components` lists the schemas that the
hand-written OpenAPI extras refer to, so that each ``$ref`` of ``/openapi.json`` resolves.

Not here: routes (``r1omni.serve.app``), the timeline stream (``r1omni.serve.stream``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from r1omni.claims import check_claims
from r1omni.explain.reasoning import mentions_audio, mentions_visual
from r1omni.serve.inputs import FLAG_WORDS, FLAGS, PathRequest

__all__ = ["Claim", "ReasoningSegment", "ModalityEffect", "Attribution", "Timings", "FaceCropSummary", "Word",
           "Transcript", "MediaSummary", "PredictResponse", "TimelineWindow", "ModelInfo", "Health", "ErrorBody",
           "ERRORS", "PREDICT_BODY", "TIMELINE_STREAM", "reasoning_segments", "openapi_components"]

# Clause boundaries: sentence ends, semicolons, and a comma before a contrasting conjunction
# ("the face is tense, but the voice is calm" holds one visual and one audio clause).
_CLAUSE_END = re.compile(r"(?<=[.!?;])\s+|,\s+(?=(?:but|while|whereas|yet|although|though)\b)", re.IGNORECASE)
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
    start: float
    end: float
    """Seconds from the start of the clip."""
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


class PredictResponse(BaseModel):
    id: str
    think: str | None
    answer: str | None
    label: str | None
    """The answer as a canonical label of the model's label set, None when it names none."""
    format_ok: bool
    output: str
    """The raw completion."""
    reasoning: list[ReasoningSegment]
    batch_size: int
    """How many clips shared the model call."""
    media: MediaSummary
    timings: Timings
    attribution: Attribution | None = None
    face_crop: FaceCropSummary | None = None
    """With ``face_crop``: whether a face was found and what the model saw."""
    transcript: Transcript | None = None
    """With ``transcribe``: the recognised speech."""


class TimelineWindow(BaseModel):
    """One ``window`` line of the ``/v1/timeline`` stream."""

    type: Literal["window"] = "window"
    index: int
    start_seconds: float
    end_seconds: float
    label: str | None
    answer: str | None
    think: str | None
    format_ok: bool
    transcript: str | None
    reasoning: list[ReasoningSegment]
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


def openapi_components() -> dict[str, dict]:
    """The schemas :data:`PREDICT_BODY` and :data:`TIMELINE_STREAM` refer to, with the models they nest,
    for ``components/schemas``. FastAPI collects only the models a route declares; a model's own
    ``model_json_schema()`` puts its nested models under a local ``$defs`` whose ``#/$defs/...`` refs
    do not resolve once the schema sits inside the OpenAPI document."""
    components: dict[str, dict] = {}
    for model in (PathRequest, TimelineWindow):
        schema = model.model_json_schema(ref_template=_COMPONENT)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def reasoning_segments(think: str | None, levels: dict[str, str] | None = None) -> list[ReasoningSegment]:
    """``think`` cut into clauses, each tagged with the kind of evidence it cites and its cue claims checked
    against ``levels`` (measured cue levels; None: nothing is checkable).

    >>> [(s.text, s.visual, s.audio) for s in reasoning_segments("The brows drop, but the voice is calm. Sad.")]
    [('The brows drop, ', True, False), ('but the voice is calm. ', False, True), ('Sad.', False, False)]
    """
    if not think:
        return []
    pieces, start = [], 0
    for match in _CLAUSE_END.finditer(think):
        pieces.append(think[start:match.end()])
        start = match.end()
    pieces.append(think[start:])
    return [ReasoningSegment(text=p, visual=mentions_visual(p), audio=mentions_audio(p),
                             claims=[Claim(phrase=c.phrase, cue=c.cue, claimed=c.claimed, measured=c.actual,
                                           verdict=c.verdict) for c in check_claims(p, levels)])
            for p in pieces if p]
