"""The HTTP API and the web page: ``POST /v1/predict``, ``POST /v1/timeline``, ``GET /v1/model``,
``GET /healthz``, ``/``.

A prediction goes through three steps, as litgpt's servers split them:

* :func:`decode_request`: the upload streamed to a temporary file, or a server path checked against
  the media root (``r1omni.serve.inputs``), then the clip's headers probed for the limits;
* :func:`predict`: a job for the batching worker (``r1omni.serve.worker``), awaited with the
  request timeout;
* :func:`encode_response`: the parsed answer, the reasoning cut into clauses tagged as visual and/or
  audio evidence (``r1omni.explain.reasoning``'s word lists, so the page does not repeat them), each
  clause's cue claims checked against the cues measured on the clip (``r1omni.claims``,
  ``r1omni.cues``), the per-modality attribution when asked, and timings.

Options per request (query parameter, form field or JSON key): ``explain``, ``face_crop`` (frames
cropped to the face; the response says whether one was found) and ``transcribe`` (the speech,
recognised offline, becomes the subtitle; the response carries the transcript).

``POST /v1/timeline`` takes a long recording the same ways and answers window by window: an
``application/x-ndjson`` stream of one ``start`` line (the number of windows), one ``window`` line
per answered window (its times, answer, label, reasoning and transcript, and the windows done so
far) and a last ``summary`` line (share of time per emotion, changes), or an ``error`` line; the
page draws it as a timeline under the player while it arrives. Recordings up to
``max_recording_seconds`` are accepted; the client going away stops the work at the next window
batch.

Every error is JSON ``{"error": code, "message": text}`` with its status: 400 malformed request,
403 path outside the media root, 404 missing path, 413 upload or clip too large, 415 unsupported
body type, 422 unreadable media (the decoder's reason), 500 a model failure (the worker goes on),
503 queue full or shutting down, 504 timeout.
Logs carry request ids, sizes and timings, never clip contents, file names or answers.

Not here: model loading details (``r1omni.models``), decoding (``r1omni.media``), the CLI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from r1omni.claims import check_claims
from r1omni.explain.attribution import ClipAttribution
from r1omni.explain.reasoning import AUDIO_WORDS, VISUAL_WORDS, mentions_audio, mentions_visual
from r1omni.labels import get_label_set
from r1omni.media import MediaInfo
from r1omni.models import Policy, load_policy
from r1omni.serve.config import ServeConfig
from r1omni.serve.errors import ServeError
from r1omni.serve.inputs import ClipRequest, PathRequest, check_clip, read_path_request, receive_upload, sample_for_clip
from r1omni.serve.worker import BatchWorker, ClipResult, Job, QueueFull, WorkerClosed
from r1omni.timeline import SPLITS, TimelineOptions, WindowPrediction

__all__ = ["create_app", "decode_request", "predict", "encode_response", "encode_window", "stream_timeline",
           "reasoning_segments", "STATIC_DIR"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
# The page loads only what this server serves; media plays from local object URLs (blob:).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
# Clause boundaries: sentence ends, semicolons, and a comma before a contrasting conjunction
# ("the face is tense, but the voice is calm" holds one visual and one audio clause).
_CLAUSE_END = re.compile(r"(?<=[.!?;])\s+|,\s+(?=(?:but|while|whereas|yet|although|though)\b)", re.IGNORECASE)


# -- response schemas (also the OpenAPI document) ------------------------------------------------------
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


_ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "Malformed request"), (403, "Path outside the media root, or path requests disabled"),
    (404, "No such path under the media root"), (413, "Upload or clip over the limits"),
    (415, "Body is neither multipart/form-data nor JSON"), (422, "Unreadable media or invalid request"),
    (503, "Queue full or server shutting down"), (504, "No answer within the request timeout"))}
_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "A video or audio clip"},
        "explain": {"type": "boolean", "default": False},
        "face_crop": {"type": "boolean", "default": False},
        "transcribe": {"type": "boolean", "default": False}}}},
    "application/json": {"schema": PathRequest.model_json_schema()},
}}}
_TIMELINE_STREAM = {200: {"description": "One JSON object per line: start, window (one per window), summary or error",
                          "content": {"application/x-ndjson": {"schema": TimelineWindow.model_json_schema()}}}}


# -- the three steps ---------------------------------------------------------------------------------------
async def decode_request(request: Request, config: ServeConfig, request_id: str, flags: dict[str, bool],
                         max_seconds: float | None = None) -> tuple[ClipRequest, MediaInfo]:
    """The clip named or carried by ``request``, on disk and within the limits (``max_seconds``: the
    longest accepted, default ``max_duration_seconds``). A temporary upload is removed here if a check
    fails; afterwards the caller removes it (``ClipRequest.discard``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        clip = await receive_upload(request, config, request_id, flags)
    elif content_type == "application/json":
        clip = await read_path_request(request, config, request_id, flags)
    else:
        raise ServeError(415, "unsupported_media_type",
                         f"send multipart/form-data with a 'file' field, or JSON {{\"path\": ...}}; "
                         f"got {content_type or 'no content type'!r}")
    checked = False
    try:
        info = await run_in_threadpool(check_clip, clip, config, max_seconds)
        checked = True
    finally:
        if not checked:  # refused, or the client went away: the upload goes now
            clip.discard()
    logger.info("request %s: %s of %d bytes, %s s, video=%s audio=%s, explain=%s face_crop=%s transcribe=%s",
                request_id, "upload" if clip.temporary else "server file", clip.size_bytes,
                f"{info.duration_seconds:.1f}" if info.duration_seconds is not None else "?",
                info.has_video, info.has_audio, clip.explain, clip.face_crop, clip.transcribe)
    return clip, info


async def predict(worker: BatchWorker, clip: ClipRequest, info: MediaInfo, timeout_seconds: float) -> ClipResult:
    """Queue the clip for the model and wait for its answer (503 when the queue is full, 504 on timeout)."""
    if not worker.alive:
        raise ServeError(503, "unavailable", "the model worker is not running")
    try:
        future = worker.submit(Job(sample_for_clip(clip, info), explain=clip.explain, face_crop=clip.face_crop,
                                   transcribe=clip.transcribe))
    except QueueFull:
        logger.warning("request %s: refused, queue full (%d waiting)", clip.id, worker.queued)
        busy = f"the server is busy ({worker.config.max_queue} clips waiting); retry later"
        raise ServeError(503, "queue_full", busy, headers={"Retry-After": "1"}) from None
    except WorkerClosed:
        raise ServeError(503, "shutting_down", "the server is shutting down") from None
    try:
        # On timeout the future is cancelled: a job still waiting in the queue is then never run (one
        # already in the model finishes, and its answer is dropped).
        result = await asyncio.wait_for(asyncio.wrap_future(future), timeout_seconds)
    except asyncio.TimeoutError:
        logger.warning("request %s: no answer within %g s", clip.id, timeout_seconds)
        raise ServeError(504, "timeout", f"no answer within {timeout_seconds:g} s; the server is busy or "
                                         "the clip is too long for this model") from None
    except WorkerClosed:
        raise ServeError(503, "shutting_down", "the server is shutting down") from None
    if result.error is not None:
        raise ServeError(422, "unreadable_media", f"{clip.name}: {result.error}")
    return result


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


def _attribution(found: ClipAttribution, info: MediaInfo, method: str) -> Attribution:
    present = {"video": info.has_video, "audio": info.has_audio, "both": info.has_video or info.has_audio}
    effects = []
    for modality, condition in (("video", "no_video"), ("audio", "no_audio"), ("both", "no_media")):
        values = found.conditions[condition]
        effects.append(ModalityEffect(modality=modality, present=present[modality],
                                      answer_contribution=values["answer_contribution"],
                                      completion_contribution=values["completion_contribution"],
                                      flipped=values["flipped"], label_without=values["pred"]))
    return Attribution(method=method, decisive=found.decisive, modalities=effects)


def encode_response(clip: ClipRequest, info: MediaInfo, result: ClipResult, started: float,
                    explain_method: str) -> PredictResponse:
    timings = Timings(**result.timings, total_seconds=time.perf_counter() - started)
    return PredictResponse(
        id=clip.id, think=result.think, answer=result.answer, label=result.label, format_ok=result.format_ok,
        output=result.output or "", reasoning=reasoning_segments(result.think, result.cue_levels),
        batch_size=result.batch_size,
        media=MediaSummary(duration_seconds=info.duration_seconds, has_video=info.has_video,
                           has_audio=info.has_audio, size_bytes=clip.size_bytes),
        timings=timings,
        attribution=_attribution(result.attribution, info, explain_method) if result.attribution else None,
        face_crop=FaceCropSummary(**result.notes["face_crop"]) if result.notes.get("face_crop") else None,
        transcript=Transcript(**result.notes["transcript"]) if result.notes.get("transcript") else None)


def _ndjson(line: dict) -> bytes:
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def encode_window(window: WindowPrediction, done: int, total: int) -> TimelineWindow:
    """One answered window as its line of the timeline stream (cue claims per clause, as for a clip)."""
    levels = {claim["cue"]: claim["actual"] for claim in window.claims if claim["actual"]}
    return TimelineWindow(index=window.index, start_seconds=window.start_seconds, end_seconds=window.end_seconds,
                          label=window.label, answer=window.answer, think=window.think, format_ok=window.format_ok,
                          transcript=window.transcript, reasoning=reasoning_segments(window.think, levels),
                          error=window.error, done=done, total=total)


async def stream_timeline(worker: BatchWorker, job: Job, clip: ClipRequest, info: MediaInfo) -> AsyncIterator[bytes]:
    """The NDJSON lines of one timeline job as its windows are answered (see the module docstring).
    The upload is removed, and the job stopped, when the stream ends for any reason."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue = asyncio.Queue()
    job.on_window = lambda window, done, total: loop.call_soon_threadsafe(arrived.put_nowait, (window, done, total))
    finished = asyncio.wrap_future(job.future)
    try:
        yield _ndjson({"type": "start", "id": clip.id, "duration_seconds": info.duration_seconds,
                       "window_seconds": job.timeline.window_seconds, "split": job.timeline.split})
        while True:
            waiting = asyncio.ensure_future(arrived.get())
            await asyncio.wait({waiting, finished}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                break
            yield _ndjson(encode_window(*waiting.result()).model_dump())
        while not arrived.empty():
            yield _ndjson(encode_window(*arrived.get_nowait()).model_dump())
        try:
            result = finished.result()
        except Exception as err:  # noqa: BLE001 — reported in the stream, whose 200 status is already sent
            reason = err.reason if hasattr(err, "reason") else f"the server failed ({type(err).__name__})"
            yield _ndjson({"type": "error", "error": "timeline_failed", "message": f"{clip.name}: {reason}"})
            return
        yield _ndjson({"type": "summary", "summary": result.summary})
    finally:
        job.cancel()
        clip.discard()


# -- the application -----------------------------------------------------------------------------------------
def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def create_app(policy_or_model_dir: Policy | str | os.PathLike, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI application. The batching worker starts and stops with the app's lifespan (uvicorn
    runs it; in-process tests enter ``app.router.lifespan_context(app)``)."""
    config = config or ServeConfig()
    if isinstance(policy_or_model_dir, (str, os.PathLike)):
        policy = load_policy(policy_or_model_dir, device=config.device or _default_device())
        default_name = Path(policy_or_model_dir).resolve().name
    else:
        policy, default_name = policy_or_model_dir, policy_or_model_dir.family
    if config.media_root is not None and not Path(config.media_root).is_dir():
        raise ValueError(f"media_root {config.media_root!r} is not a folder")
    if config.upload_dir is not None and not Path(config.upload_dir).is_dir():
        raise ValueError(f"upload_dir {config.upload_dir!r} is not a folder")
    label_set = get_label_set(config.label_set)
    worker = BatchWorker(policy, config)
    model_info = ModelInfo(
        name=config.model_name or default_name, family=policy.family, num_frames=policy.num_frames,
        modalities=config.modalities, label_set=label_set.name, labels=list(label_set.labels),
        reasoning_words={"visual": list(VISUAL_WORDS), "audio": list(AUDIO_WORDS)},
        limits={"max_upload_bytes": config.max_upload_bytes, "max_duration_seconds": config.max_duration_seconds,
                "max_recording_seconds": config.max_recording_seconds,
                "request_timeout_seconds": config.request_timeout_seconds, "max_queue": config.max_queue,
                "max_batch_size": config.max_batch_size})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        logger.info("serving %s (%s): queue %d, batches of up to %d", model_info.name, policy.family,
                    config.max_queue, config.max_batch_size)
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN; /openapi.json is served.
    app = FastAPI(title="r1omni", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Emotion recognition from video and audio clips, with reasoning "
                              "(<think>/<answer>) and per-modality attribution.")
    app.state.worker = worker
    app.state.config = config
    # Requests between arrival and response. Capped so that uploads waiting for a queue slot cannot
    # pile up on disk: at most this many uploads of max_upload_bytes exist at once.
    max_in_flight = config.max_queue + config.max_batch_size
    in_flight = 0

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        return _error_response(err.status, err.code, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error_response(err.status_code, "http_error", str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return _error_response(422, "invalid_request", problems)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        # Starlette logs the traceback and re-raises after this response; the client gets JSON.
        return _error_response(500, "internal_error", f"the server failed ({type(err).__name__})")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", response_model=Health)
    async def healthz() -> JSONResponse:
        health = Health(status="ok" if worker.alive else "unavailable", queued=worker.queued,
                        max_queue=worker.config.max_queue, batches_run=len(worker.batch_sizes),
                        clips_answered=worker.clips_answered)
        return JSONResponse(health.model_dump(), status_code=200 if worker.alive else 503)

    @app.get("/v1/model", response_model=ModelInfo)
    async def model() -> ModelInfo:
        return model_info

    @app.post("/v1/predict", response_model=PredictResponse, responses=_ERRORS, openapi_extra=_PREDICT_BODY)
    async def predict_route(request: Request, explain: bool = Query(
            False, description="Also compute the per-modality attribution (about nine model passes)."),
            face_crop: bool = Query(False, description="Crop the frames to the largest face."),
            transcribe: bool = Query(False, description="Recognise the speech and use it as the subtitle.")
    ) -> JSONResponse:
        """Answer for one clip: a multipart upload (field ``file``) or JSON ``{"path": ...}`` under the
        media root."""
        nonlocal in_flight
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:12]
        if in_flight >= max_in_flight:
            logger.warning("request %s: refused, %d requests in progress", request_id, in_flight)
            raise ServeError(503, "queue_full", f"the server is busy ({in_flight} requests in progress); "
                                                "retry later", headers={"Retry-After": "1"})
        in_flight += 1
        try:
            clip, info = await decode_request(request, config, request_id,
                                              {"explain": explain, "face_crop": face_crop, "transcribe": transcribe})
            try:
                result = await predict(worker, clip, info, config.request_timeout_seconds)
            finally:
                clip.discard()
        finally:
            in_flight -= 1
        response = encode_response(clip, info, result, started, config.explain_method)
        logger.info("request %s: answered in %.3f s (batch of %d)", request_id, response.timings.total_seconds,
                    response.batch_size)
        return JSONResponse(response.model_dump(), headers={"X-Request-ID": request_id})

    @app.post("/v1/timeline", responses={**_ERRORS, **_TIMELINE_STREAM}, openapi_extra=_PREDICT_BODY)
    async def timeline_route(
            request: Request,
            segment_seconds: float = Query(4.0, gt=0, description="Window length (with split=speech: the longest)."),
            overlap_seconds: float = Query(0.0, ge=0, description="Overlap of consecutive fixed windows."),
            split: Literal[SPLITS] = Query("fixed", description="fixed windows, or utterances (voice activity)."),
            face_crop: bool = Query(False, description="Crop the frames to the largest face."),
            transcribe: bool = Query(False, description="Recognise the speech of each window as its subtitle.")
    ) -> StreamingResponse:
        """A long recording answered window by window, streamed as NDJSON (see the module docstring)."""
        nonlocal in_flight
        request_id = uuid.uuid4().hex[:12]
        try:
            options = TimelineOptions(window_seconds=segment_seconds, overlap_seconds=overlap_seconds, split=split,
                                      batch_size=config.max_batch_size)
        except ValueError as err:
            raise ServeError(422, "invalid_request", str(err)) from None
        if in_flight >= max_in_flight:
            raise ServeError(503, "queue_full", f"the server is busy ({in_flight} requests in progress); "
                                                "retry later", headers={"Retry-After": "1"})
        in_flight += 1
        try:
            clip, info = await decode_request(request, config, request_id,
                                              {"face_crop": face_crop, "transcribe": transcribe},
                                              max_seconds=config.max_recording_seconds)
            job = Job(sample_for_clip(clip, info), face_crop=clip.face_crop, transcribe=clip.transcribe,
                      timeline=options)
            try:
                worker.submit(job)
            except (QueueFull, WorkerClosed) as err:
                clip.discard()
                raise ServeError(503, "queue_full" if isinstance(err, QueueFull) else "shutting_down",
                                 f"the server is busy or stopping ({err}); retry later",
                                 headers={"Retry-After": "1"}) from None
        except BaseException:
            in_flight -= 1
            raise

        async def lines() -> AsyncIterator[bytes]:
            nonlocal in_flight
            try:
                async for line in stream_timeline(worker, job, clip, info):
                    yield line
            finally:
                in_flight -= 1

        logger.info("request %s: timeline of %s s in %g s windows", request_id,
                    f"{info.duration_seconds:.1f}" if info.duration_seconds else "?", segment_seconds)
        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"X-Request-ID": request_id})

    return app


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
