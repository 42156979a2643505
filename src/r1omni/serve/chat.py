"""The OpenAI-compatible surface of the server: ``POST /v1/chat/completions`` and ``GET /v1/models``, as
the tools pointed at omni models (the ``openai`` client, LangChain, eval harnesses) speak them to vLLM
and ms-swift.

* :func:`read_chat_request`: the JSON body (up to a data: URL of ``max_upload_bytes`` and room for
  the rest) as a :class:`ChatRequest`; a malformed one is a 400 naming the field.
* :func:`clip_from_messages`: the request's one clip. Content parts are read as vLLM reads them:
  ``{"type": "video_url", "video_url": {"url": ...}}``, ``{"type": "audio_url", "audio_url": {"url":
  ...}}`` and ``{"type": "input_audio", "input_audio": {"data": base64, "format": "wav"}}`` (and
  ms-swift's ``{"type": "video", "video": url}``, ``{"type": "audio", "audio": url}``); a URL is
  a base64 ``data:`` URL (stored as an upload), a ``file://`` URL or a path (both read below the
  media root, as ``{"path": ...}`` on ``/v1/predict``). Nothing is fetched: an ``http(s)`` URL is a
  400 naming the part. One clip per request (a video part whose file carries the soundtrack, or an
  audio part).
* :func:`chat_completion` and :func:`completion_chunks`: the answer, which ``/v1/predict``'s steps
  produced (``r1omni.serve.app``), as a completion whose message is the model's
  ``<think>...</think><answer>...</answer>`` text, or as its stream of chunks; r1omni's own response
  (parsed answer, label, reasoning with claim verdicts, timings) rides along in the extra field
  ``r1omni``.

What is not OpenAI's: text parts and system messages are accepted but not shown to the model, which
is asked the question it was trained on (``ServeConfig.prompt``); decoding is the server's greedy
decoding (``temperature``, ``top_p``, ``max_tokens`` ... are accepted and ignored), so ``n`` must be
1; ``usage`` is not counted. r1omni's per-request options are top-level keys (``explain``,
``face_crop``, ``transcribe``; the ``openai`` client sends them with ``extra_body``).

Not here: the routes and the shared answer path (``r1omni.serve.app``), the error shape
(``r1omni.serve.errors``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from r1omni.serve.config import ServeConfig
from r1omni.serve.errors import ServeError
from r1omni.serve.inputs import (FLAGS, FORM_ALLOWANCE_BYTES, ClipRequest, read_body, resolve_media_path,
                                 store_upload)
from r1omni.serve.schemas import PredictResponse

__all__ = ["ChatRequest", "ChatMessage", "ChatCompletion", "ChatCompletionChunk", "ModelCard", "ModelList",
           "MEDIA_PARTS", "read_chat_request", "clip_from_messages", "chat_completion", "completion_chunks",
           "role_chunk", "sse", "SSE_DONE", "OpenAIErrorBody", "CHAT_ERRORS", "CHAT_BODY", "CHAT_STREAM"]

MEDIA_PARTS = ("video_url", "audio_url", "input_audio", "video", "audio")
"""The content-part types that carry a clip (``video`` and ``audio``: ms-swift's own, whose value is the URL
string itself); ``text`` parts are the only others accepted."""
SSE_DONE = b"data: [DONE]\n\n"
# Suffixes the demuxer may take as a hint, for the media types clients write that mimetypes may not know.
_SUFFIXES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/mpeg": ".mp3",
             "audio/mp3": ".mp3", "audio/flac": ".flac", "audio/ogg": ".ogg", "video/mp4": ".mp4",
             "video/webm": ".webm", "video/x-matroska": ".mkv", "video/quicktime": ".mov", "video/x-msvideo": ".avi"}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)", re.DOTALL)


class ChatMessage(BaseModel):
    """A message of the conversation; ``content`` is text or a list of content parts (read by hand, so
    that an unknown part is refused by name rather than by a union's error list)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``. Sampling fields OpenAI defines (``temperature``,
    ``max_tokens`` ...) are accepted and ignored: the server decodes greedily."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    """The served model's name (``GET /v1/models``); another name is a 404."""
    messages: list[ChatMessage] = Field(min_length=1)
    """User messages carry exactly one media part in all (:data:`MEDIA_PARTS`)."""
    stream: bool = False
    """Send the completion as server-sent events (``chat.completion.chunk`` objects, then ``[DONE]``)."""
    n: int = Field(1, ge=1, le=1)
    """Completions per request: only 1 (greedy decoding gives one answer)."""
    explain: bool = False
    """r1omni: also compute the per-modality attribution (about nine model passes)."""
    face_crop: bool = False
    """r1omni: crop the frames to the largest face."""
    transcribe: bool = False
    """r1omni: recognise the speech and use it as the subtitle."""


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    """The model's completion as generated: ``<think>...</think><answer>...</answer>``."""


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    r1omni: PredictResponse
    """r1omni's own response for the clip, as ``POST /v1/predict`` gives it."""


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion: the role first, then pieces of the text, then an
    empty delta with ``finish_reason`` and the ``r1omni`` response."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    r1omni: PredictResponse | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "r1omni"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- the request ---------------------------------------------------------------------------------------------
def _chat_body_limit(config: ServeConfig) -> int:
    """Room for a clip of ``max_upload_bytes`` as base64 (4 characters per 3 bytes) and the rest of the JSON."""
    return math.ceil(config.max_upload_bytes / 3) * 4 + FORM_ALLOWANCE_BYTES


async def read_chat_request(request: Request, config: ServeConfig) -> ChatRequest:
    """The validated body; 400 naming the first bad field, 413 over the size limit."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ServeError(415, "unsupported_media_type", f"send JSON; got {content_type or 'no content type'!r}")
    body = await read_body(request, config, _chat_body_limit(config))
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise ServeError(400, "invalid_request", f"{where}: {first['msg']}", param=where or None) from None


def _media_parts(chat: ChatRequest) -> list[tuple[str, dict[str, Any]]]:
    """``(where, part)`` for every media part, each part's type checked; media is read from user messages only."""
    found = []
    for m, message in enumerate(chat.messages):
        if not isinstance(message.content, list):
            continue
        for p, part in enumerate(message.content):
            where = f"messages[{m}].content[{p}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            if kind not in MEDIA_PARTS:
                raise ServeError(400, "unsupported_content", f"{where}: a {kind!r} part is not read; send text, "
                                                             f"{', '.join(MEDIA_PARTS)}", param=where)
            if message.role != "user":
                raise ServeError(400, "unsupported_content", f"{where}: media is read from user messages only, "
                                                             f"not from a {message.role!r} message", param=where)
            found.append((where, part))
    return found


def clip_from_messages(chat: ChatRequest, config: ServeConfig, request_id: str) -> ClipRequest:
    """The one clip the messages carry, on disk (see the module docstring). Blocking (a ``data:`` URL is
    decoded and written here)."""
    parts = _media_parts(chat)
    if len(parts) != 1:
        named = ", ".join(where for where, _ in parts) or "none"
        raise ServeError(400, "one_clip_per_request", f"send exactly one {', '.join(MEDIA_PARTS)} part per "
                                                      f"request (found: {named})", param="messages")
    where, part = parts[0]
    kind = part["type"]
    body = part.get(kind)
    if kind == "input_audio":
        if not isinstance(body, dict) or not isinstance(body.get("data"), str) or not body["data"]:
            raise ServeError(400, "invalid_request", f"{where}.input_audio: expected {{\"data\": base64, "
                                                     f"\"format\": \"wav\"}}", param=f"{where}.input_audio")
        data = body["data"]
        if data.startswith("data:"):   # some clients send a whole data: URL here
            clip = _from_data_url(data, f"{where}.input_audio.data", config, request_id)
        else:
            suffix = "." + str(body.get("format") or "wav")
            clip = store_upload(_b64decode(data, f"{where}.input_audio.data"), suffix, f"{where}.input_audio",
                                config, request_id)
    else:
        url = body.get("url") if isinstance(body, dict) else body   # ms-swift also takes the bare string
        if not isinstance(url, str) or not url.strip():
            raise ServeError(400, "invalid_request", f"{where}.{kind}: expected {{\"url\": ...}}",
                             param=f"{where}.{kind}")
        clip = _from_url(url.strip(), f"{where}.{kind}.url", config, request_id)
    for name in FLAGS:
        setattr(clip, name, getattr(chat, name))
    return clip


def _from_url(url: str, where: str, config: ServeConfig, request_id: str) -> ClipRequest:
    """A data: URL, a file:// URL or a path; refuses every URL this server would have to fetch."""
    scheme = url.split(":", 1)[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", url) else ""
    if scheme == "data":
        return _from_data_url(url, where, config, request_id)
    if scheme in ("http", "https", "ftp", "s3", "gs", "rtsp", "rtmp"):
        raise ServeError(400, "remote_url_refused", f"{where}: this server fetches nothing from the network; "
                                                    f"send the clip as a base64 data: URL, or a path or file:// "
                                                    f"URL below the server's media root", param=where)
    if scheme == "file":
        try:
            parts = urlsplit(url)
        except ValueError as err:   # e.g. an unclosed [ in the host
            raise ServeError(400, "invalid_url", f"{where}: {err}", param=where) from None
        if parts.netloc not in ("", "localhost"):
            raise ServeError(400, "remote_url_refused", f"{where}: a file:// URL names no other host", param=where)
        requested = unquote(parts.path)
    elif scheme:
        raise ServeError(400, "unsupported_url", f"{where}: {scheme}: URLs are not read; send a data: URL, "
                                                 f"a path or a file:// URL", param=where)
    else:
        requested = url
    if config.media_root is None:
        raise ServeError(403, "paths_disabled", f"{where}: this server reads no server paths (no media root is "
                                                f"configured); send the clip as a data: URL", param=where)
    path = resolve_media_path(Path(config.media_root).resolve(), requested)
    return ClipRequest(id=request_id, path=path, name=requested, temporary=False,
                       size_bytes=path.stat().st_size if path.is_file() else 0)


def _from_data_url(url: str, where: str, config: ServeConfig, request_id: str) -> ClipRequest:
    found = _DATA_URL.fullmatch(url)
    if found is None:
        raise ServeError(400, "invalid_data_url", f"{where}: expected data:<media type>;base64,<data>", param=where)
    media_type = (found["type"] or "").lower()
    suffix = _SUFFIXES.get(media_type) or (mimetypes.guess_extension(media_type) if media_type else None) or ""
    return store_upload(_b64decode(found["data"], where), suffix, where, config, request_id)


def _b64decode(text: str, where: str) -> bytes:
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ServeError(400, "invalid_base64", f"{where}: not valid base64 ({err})", param=where) from None
    if not data:
        raise ServeError(400, "invalid_base64", f"{where}: the clip is empty", param=where)
    return data


# -- the response ----------------------------------------------------------------------------------------------
def chat_completion(answered: PredictResponse, model: str, created: int) -> ChatCompletion:
    """The clip's answer as a completion: the message is the model's text, ``r1omni`` the whole answer."""
    return ChatCompletion(id=f"chatcmpl-{answered.id}", created=created, model=model, r1omni=answered,
                          choices=[Choice(message=AssistantMessage(content=answered.output))])


def _pieces(text: str) -> list[str]:
    """``text`` cut after each run of white space: pieces that join to ``text`` exactly."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def completion_chunks(answered: PredictResponse, model: str, created: int) -> Iterator[ChatCompletionChunk]:
    """The answer's text word by word, then the closing chunk carrying ``finish_reason`` and ``r1omni``
    (the role chunk goes first, before the answer exists: :func:`role_chunk`)."""
    stamp = {"id": f"chatcmpl-{answered.id}", "created": created, "model": model}
    for piece in _pieces(answered.output):
        yield ChatCompletionChunk(**stamp, choices=[ChunkChoice(delta=Delta(content=piece))])
    yield ChatCompletionChunk(**stamp, choices=[ChunkChoice(delta=Delta(), finish_reason="stop")], r1omni=answered)


def role_chunk(request_id: str, model: str, created: int) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=f"chatcmpl-{request_id}", created=created, model=model,
                               choices=[ChunkChoice(delta=Delta(role="assistant", content=""))])


def sse(payload: BaseModel | dict) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    data = payload.model_dump() if isinstance(payload, BaseModel) else payload
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"


# -- the OpenAPI document ------------------------------------------------------------------------------------
class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    """invalid_request_error, not_found_error or server_error."""
    param: str | None
    """The offending field or content part (``messages[0].content[1].video_url.url``), when there is one."""
    code: str
    """r1omni's error code, as ``/v1/predict`` gives it (``remote_url_refused``, ``unreadable_media`` ...)."""


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


CHAT_ERRORS = {status: {"model": OpenAIErrorBody, "description": text} for status, text in (
    (400, "Malformed request, a remote URL, or not exactly one clip"), (403, "Path outside the media root, or "
                                                                           "path requests disabled"),
    (404, "Unknown model, or no such path under the media root"), (408, "The request body stopped arriving"),
    (413, "Body or clip over the limits"), (415, "Body is not JSON"), (422, "Unreadable media"),
    (503, "Queue full or server shutting down"), (504, "No answer within the request timeout"),
    (507, "No space left on the server to store the clip"))}
CHAT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}}}
CHAT_STREAM = {200: {"description": "A chat.completion, or with stream=true server-sent events: "
                                    "chat.completion.chunk objects, then [DONE]",
                     "content": {"text/event-stream": {
                         "schema": {"$ref": "#/components/schemas/ChatCompletionChunk"}}}}}
