"""The HTTP API and the web page: ``POST /v1/predict``, ``POST /v1/timeline``, ``GET /v1/model``,
``GET /healthz``, ``/``; the OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``;
the API's documentation pages ``/docs`` (Swagger UI) and ``/redoc``, whose scripts this server serves
itself (``r1omni.serve.docs``): no page loads anything from another host.

A prediction goes through three steps, as litgpt's servers split them:

* :func:`decode_request`: the upload streamed to a temporary file, or a server path checked against
  the media root (``r1omni.serve.inputs``), then the clip's headers probed for the limits;
* :func:`predict`: a job for the batching worker (``r1omni.serve.worker``), awaited with the
  request timeout;
* :func:`encode_response`: the clip's answer record (``r1omni.inference.Answer``, mapped in
  ``r1omni.serve.schemas.answer_fields``): the parsed answer, the cue levels measured on the clip, and
  the reasoning cut into clauses tagged as visual and/or audio evidence
  (``r1omni.explain.reasoning.segments``, whose word lists the page does not repeat), each with its
  cue claims checked; the per-modality attribution when asked, and timings.

Options per request (query parameter, form field or JSON key): ``explain``, ``face_crop`` (frames
cropped to the face; the response says whether one was found) and ``transcribe`` (the speech,
recognised offline, becomes the subtitle; the response carries the transcript).

``POST /v1/timeline`` takes a long recording the same ways and answers window by window: an
``application/x-ndjson`` stream of one ``start`` line (the number of windows), one ``window`` line
per answered window (its times, answer, label, reasoning and transcript, and the windows done so
far) and a last ``summary`` line (share of time per emotion, changes), or an ``error`` line; the
page draws it as a timeline under the player while it arrives. Recordings up to
``max_recording_seconds`` and ``max_timeline_windows`` windows are accepted; the worker answers
waiting clips between a recording's window batches, so a long timeline does not starve
``/v1/predict``; the client going away stops the work at the next window batch.

Every error is JSON ``{"error": code, "message": text}`` with its status: 400 malformed request,
403 path outside the media root, 404 missing path, 408 a body that stopped arriving, 413 upload,
clip or timeline too large, 415 unsupported body type, 422 unreadable media (the decoder's reason),
500 a model failure (the worker goes on), 503 queue full or shutting down, 504 timeout, 507 no
space left to store the upload. A request counts against the in-flight cap only once its body has
arrived (``r1omni.serve.admission``). Logs carry request ids, sizes and timings, never clip
contents, file names or answers.

``POST /v1/chat/completions`` takes the clip as a content part of an OpenAI chat request
(``r1omni.serve.chat``: ``video_url``, ``audio_url``, ``input_audio``; a ``data:`` URL, a path or a
``file://`` URL, never a fetch) and answers through the same three steps (:func:`decode_chat_request`
in place of :func:`decode_request`): the completion's message is the model's text, and the extra field
``r1omni`` is :func:`encode_response`'s response for the clip. With ``stream: true`` the reply is
server-sent events (:func:`stream_chat`). Its errors take OpenAI's shape ``{"error": {"message",
"type", "param", "code"}}`` with the same statuses and codes.

The response models live in ``r1omni.serve.schemas`` (OpenAI's in ``r1omni.serve.chat``), the timeline
stream in ``r1omni.serve.stream``, the error handlers in ``r1omni.serve.errors``.
Not here: model loading details (``r1omni.models``), decoding (``r1omni.media``), the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from r1omni.media import MediaInfo
from r1omni.models import Policy, load_policy
from r1omni.models.placement import default_device
from r1omni.serve.admission import Admission
from r1omni.serve.config import ServeConfig
from r1omni.serve.chat import (CHAT_BODY, CHAT_ERRORS, CHAT_STREAM, SSE_DONE, ChatCompletion, ChatCompletionChunk,
                               ChatRequest, ModelCard, ModelList, chat_completion, clip_from_messages,
                               completion_chunks, read_chat_request, role_chunk, sse)
from r1omni.serve.docs import docs_app
from r1omni.serve.errors import ServeError, add_error_handlers, openai_error
from r1omni.serve.inputs import ClipRequest, check_clip, read_path_request, receive_upload, sample_for_clip
from r1omni.serve.schemas import (
    ERRORS,
    PREDICT_BODY,
    TIMELINE_STREAM,
    FaceCropSummary,
    Health,
    MediaSummary,
    ModelInfo,
    PredictResponse,
    Timings,
    Transcript,
    answer_fields,
    attribution_body,
    model_info,
    openapi_components,
)
from r1omni.serve.stream import encode_window, stream_timeline
from r1omni.serve.worker import BatchWorker, ClipResult, Job, QueueFull, WorkerClosed
from r1omni.timeline import SPLITS, TimelineOptions, TooManyWindows, fixed_window_count

__all__ = ["create_app", "decode_request", "decode_chat_request", "predict", "encode_response", "stream_chat",
           "encode_window", "stream_timeline", "STATIC_DIR"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
# The page loads only what this server serves; media plays from local object URLs (blob:).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
# A streamed completion says it is still waiting for the model this often (an SSE comment), so that
# proxies and clients do not take a long generation for a dead connection.
_KEEP_ALIVE_SECONDS = 10.0

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
    return clip, await _checked(clip, config, request_id, max_seconds)


async def decode_chat_request(request: Request, config: ServeConfig, request_id: str, model_name: str
                              ) -> tuple[ChatRequest, ClipRequest, MediaInfo]:
    """:func:`decode_request` for ``POST /v1/chat/completions``: the chat request, and its one clip on
    disk and within the limits (``r1omni.serve.chat``); 404 when it asks for another model."""
    chat = await read_chat_request(request, config)
    if chat.model != model_name:
        raise ServeError(404, "model_not_found", f"the model {chat.model!r} is not served here; this server "
                                                 f"serves {model_name!r} (GET /v1/models)", param="model")
    clip = await run_in_threadpool(clip_from_messages, chat, config, request_id)
    return chat, clip, await _checked(clip, config, request_id)


async def _checked(clip: ClipRequest, config: ServeConfig, request_id: str, max_seconds: float | None = None
                   ) -> MediaInfo:
    """The clip's headers checked against the limits (``check_clip``); a refused upload is removed here."""
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
    return info


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
    if result.prediction.error is not None:
        raise ServeError(422, "unreadable_media", f"{clip.name}: {result.prediction.error}")
    return result


async def answer_one(worker: BatchWorker, admission: Admission, config: ServeConfig, clip: ClipRequest,
                     info: MediaInfo, started: float, request_id: str) -> PredictResponse:
    """One admitted clip through the worker to its encoded answer, the upload discarded whatever happens:
    what ``/v1/predict`` and ``/v1/chat/completions`` (not streamed) both answer with."""
    try:
        with admission.place(request_id):
            result = await predict(worker, clip, info, config.request_timeout_seconds)
    finally:
        clip.discard()
    response = encode_response(clip, info, result, started, config.explain_method)
    logger.info("request %s: answered in %.3f s (batch of %d)", request_id, response.timings.total_seconds,
                response.batch_size)
    return response


def encode_response(clip: ClipRequest, info: MediaInfo, result: ClipResult, started: float,
                    explain_method: str) -> PredictResponse:
    """The clip's answer (``r1omni.serve.schemas.answer_fields``), what decoding found, timings, attribution."""
    prediction, notes = result.prediction, result.prediction.notes
    return PredictResponse(
        id=clip.id, **answer_fields(prediction.reply), batch_size=result.batch_size,
        media=MediaSummary(duration_seconds=info.duration_seconds, has_video=info.has_video,
                           has_audio=info.has_audio, size_bytes=clip.size_bytes),
        timings=Timings(**prediction.timings, total_seconds=time.perf_counter() - started),
        attribution=attribution_body(result.attribution, info, explain_method) if result.attribution else None,
        face_crop=FaceCropSummary(**notes["face_crop"]) if notes.get("face_crop") else None,
        transcript=Transcript(**notes["transcript"]) if notes.get("transcript") else None)


async def stream_chat(worker: BatchWorker, clip: ClipRequest, info: MediaInfo, started: float, config: ServeConfig,
                      model: str) -> AsyncIterator[bytes]:
    """A completion as server-sent events: the role chunk at once, keep-alive comments while the model
    works, then the answer (:func:`predict` and :func:`encode_response`, as for any request) cut into
    chunks, and ``[DONE]``. A failure after the 200 status is an ``{"error": ...}`` event, as OpenAI's
    clients expect. The stream owns the clip from its first byte: a client that leaves cancels a job
    still waiting in the queue."""
    created = int(time.time())
    task = asyncio.ensure_future(predict(worker, clip, info, config.request_timeout_seconds))
    # Its failure is reported in the stream, or to no one when the client has left: marked as seen either way.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        yield sse(role_chunk(clip.id, model, created))
        while not (await asyncio.wait({task}, timeout=_KEEP_ALIVE_SECONDS))[0]:
            yield b": waiting for the model\n\n"
        try:
            result = task.result()
        except ServeError as err:
            yield sse(openai_error(err.status, err.code, err.message, err.param))
            yield SSE_DONE
            return
        except Exception as err:  # noqa: BLE001 — reported in the stream, whose 200 status is already sent
            logger.error("request %s: the model failed (%s)", clip.id, type(err).__name__, exc_info=err)
            yield sse(openai_error(500, "internal_error", f"the server failed ({type(err).__name__})"))
            yield SSE_DONE
            return
        answered = encode_response(clip, info, result, started, config.explain_method)
        for chunk in completion_chunks(answered, model, created):
            yield sse(chunk)
        yield SSE_DONE
        logger.info("request %s: streamed in %.3f s (batch of %d)", clip.id, answered.timings.total_seconds,
                    answered.batch_size)
    finally:
        task.cancel()
        clip.discard()


# -- the application -----------------------------------------------------------------------------------------
def create_app(policy_or_model_dir: Policy | str | os.PathLike, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI application. The batching worker starts and stops with the app's lifespan (uvicorn
    runs it; in-process tests enter ``app.router.lifespan_context(app)``)."""
    config = config or ServeConfig()
    if isinstance(policy_or_model_dir, (str, os.PathLike)):
        policy = load_policy(policy_or_model_dir, device=config.device or default_device())
        default_name = Path(policy_or_model_dir).resolve().name
    else:
        policy, default_name = policy_or_model_dir, policy_or_model_dir.family
    if config.media_root is not None and not Path(config.media_root).is_dir():
        raise ValueError(f"media_root {config.media_root!r} is not a folder")
    if config.upload_dir is not None and not Path(config.upload_dir).is_dir():
        raise ValueError(f"upload_dir {config.upload_dir!r} is not a folder")
    worker = BatchWorker(policy, config)
    described = model_info(policy.family, policy.num_frames, config, config.model_name or default_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        logger.info("serving %s (%s): queue %d, batches of up to %d", described.name, policy.family,
                    config.max_queue, config.max_batch_size)
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    # /docs and /redoc with their scripts served from this app (FastAPI's own pages load them from a CDN).
    app = docs_app(title="r1omni", version="1", lifespan=lifespan,
                   description="Emotion recognition from video and audio clips, with reasoning "
                               "(<think>/<answer>) and per-modality attribution.")
    app.state.worker = worker
    app.state.config = config
    # Capped so that uploads waiting for the model cannot pile up on disk (r1omni.serve.admission).
    admission = Admission(config.max_queue + config.max_batch_size)
    app.state.admission = admission
    add_error_handlers(app)
    app.openapi = lambda: _openapi(app)

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
        return described

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=PREDICT_BODY)
    async def predict_route(request: Request, explain: bool = Query(
            False, description="Also compute the per-modality attribution (about nine model passes)."),
            face_crop: bool = Query(False, description="Crop the frames to the largest face."),
            transcribe: bool = Query(False, description="Recognise the speech and use it as the subtitle.")
    ) -> JSONResponse:
        """Answer for one clip: a multipart upload (field ``file``) or JSON ``{"path": ...}`` under the
        media root."""
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:12]
        admission.check(request_id)   # a full server says so before reading a body it would refuse
        clip, info = await decode_request(request, config, request_id,
                                          {"explain": explain, "face_crop": face_crop, "transcribe": transcribe})
        response = await answer_one(worker, admission, config, clip, info, started, request_id)
        return JSONResponse(response.model_dump(), headers={"X-Request-ID": request_id})

    @app.post("/v1/timeline", responses={**ERRORS, **TIMELINE_STREAM}, openapi_extra=PREDICT_BODY)
    async def timeline_route(
            request: Request,
            segment_seconds: float = Query(4.0, gt=0, description="Window length (with split=speech: the longest)."),
            overlap_seconds: float = Query(0.0, ge=0, description="Overlap of consecutive fixed windows."),
            split: Literal[SPLITS] = Query("fixed", description="fixed windows, or utterances (voice activity)."),
            face_crop: bool = Query(False, description="Crop the frames to the largest face."),
            transcribe: bool = Query(False, description="Recognise the speech of each window as its subtitle.")
    ) -> StreamingResponse:
        """A long recording answered window by window, streamed as NDJSON (see the module docstring)."""
        request_id = uuid.uuid4().hex[:12]
        options = _timeline_options(config, segment_seconds, overlap_seconds, split)
        admission.check(request_id)
        clip, info = await decode_request(request, config, request_id,
                                          {"face_crop": face_crop, "transcribe": transcribe},
                                          max_seconds=config.max_recording_seconds)
        try:
            job = _submit_timeline(worker, admission, request_id, clip, info, options)
        except BaseException:
            clip.discard()
            raise

        async def lines() -> AsyncIterator[bytes]:
            try:
                async for line in stream_timeline(worker, job, clip, info):
                    yield line
            finally:
                admission.leave()

        logger.info("request %s: timeline of %s s in %g s windows", request_id,
                    f"{info.duration_seconds:.1f}" if info.duration_seconds else "?", segment_seconds)
        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"X-Request-ID": request_id})

    _add_openai_routes(app, worker, admission, config, described.name)
    return app


def _add_openai_routes(app: FastAPI, worker: BatchWorker, admission: Admission, config: ServeConfig,
                       model_name: str) -> None:
    """``GET /v1/models`` (and one model by name) and ``POST /v1/chat/completions`` (module docstring)."""
    card = ModelCard(id=model_name, created=int(time.time()))

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        """The served model, as OpenAI lists models: its ``id`` is the ``model`` of a chat request."""
        return ModelList(data=[card])

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard, responses={404: CHAT_ERRORS[404]})
    async def model_by_name(model_id: str) -> ModelCard:
        if model_id != model_name:
            raise ServeError(404, "model_not_found", f"the model {model_id!r} is not served here", param="model")
        return card

    @app.post("/v1/chat/completions", response_model=ChatCompletion, openapi_extra=CHAT_BODY,
              responses={**CHAT_ERRORS, **CHAT_STREAM})
    async def chat_route(request: Request) -> JSONResponse | StreamingResponse:
        """An OpenAI chat completion for the one clip of the messages (``r1omni.serve.chat``)."""
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:12]
        admission.check(request_id)
        chat, clip, info = await decode_chat_request(request, config, request_id, model_name)
        headers = {"X-Request-ID": request_id}
        if chat.stream:
            try:
                admission.enter(request_id)
            except ServeError:
                clip.discard()
                raise

            async def events() -> AsyncIterator[bytes]:
                try:
                    async for event in stream_chat(worker, clip, info, started, config, model_name):
                        yield event
                finally:
                    admission.leave()

            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})
        answered = await answer_one(worker, admission, config, clip, info, started, request_id)
        return JSONResponse(chat_completion(answered, model_name, int(time.time())).model_dump(), headers=headers)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document plus the schemas the routes' hand-written extras refer to (so every $ref resolves)."""
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)   # builds and keeps app.openapi_schema
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in openapi_components(ChatRequest, ChatCompletionChunk).items():
            schemas.setdefault(name, schema)
    return app.openapi_schema


def _timeline_options(config: ServeConfig, segment_seconds: float, overlap_seconds: float, split: str
                      ) -> TimelineOptions:
    try:
        return TimelineOptions(window_seconds=segment_seconds, overlap_seconds=overlap_seconds, split=split,
                               batch_size=config.max_batch_size, max_windows=config.max_timeline_windows)
    except ValueError as err:
        raise ServeError(422, "invalid_request", str(err)) from None


def _submit_timeline(worker: BatchWorker, admission: Admission, request_id: str, clip: ClipRequest, info: MediaInfo,
                     options: TimelineOptions) -> Job:
    """Check the recording's window count (fixed windows: from its headers; utterances are counted by
    the worker), take an admission place and queue the job. The caller's stream leaves the place."""
    if options.split == "fixed" and info.duration_seconds:
        try:
            options.check_count(fixed_window_count(info.duration_seconds, options))
        except TooManyWindows as err:
            raise ServeError(413, "too_many_windows", f"{clip.name}: {err}") from None
    job = Job(sample_for_clip(clip, info), face_crop=clip.face_crop, transcribe=clip.transcribe, timeline=options)
    admission.enter(request_id)
    try:
        worker.submit(job)
    except (QueueFull, WorkerClosed) as err:
        admission.leave()
        raise ServeError(503, "queue_full" if isinstance(err, QueueFull) else "shutting_down",
                         f"the server is busy or stopping ({err}); retry later", headers={"Retry-After": "1"}) from None
    return job


