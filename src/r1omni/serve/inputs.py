"""From an HTTP request to a clip on disk the model may read: uploads, server paths, header checks.

* :func:`receive_upload` streams a multipart upload (field ``file``) into a temporary file, counting
  bytes as they arrive: a Content-Length over the limit is refused before the body is read, and a
  body without one is cut off at the limit. A body that stops arriving for
  ``upload_idle_timeout_seconds`` gets 408, a client that goes away is let go without a traceback,
  and a full disk is said as such (507). The partial file is removed on every failure.
* :func:`resolve_media_path` maps a ``{"path": ...}`` request into the configured media root after
  resolving ``..`` and symlinks; anything that lands outside is refused (403).
* :func:`read_body` reads a whole (JSON) body up to a limit (413 past it); :func:`store_upload`
  writes bytes a request carried inline (a ``data:`` URL of ``/v1/chat/completions``) to a
  temporary file, as an upload.
* :func:`check_clip` reads the clip's headers (``r1omni.media.probe``) to refuse unreadable files
  (422, with the decoder's reason) and clips over the duration limit (413) before any decoding.

Not here: decoding frames and audio (the worker does that, on the model's thread) and deleting
finished uploads (the route that created one removes it).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from r1omni.media import MediaError, MediaInfo, probe
from r1omni.schema import Sample
from r1omni.serve.config import ServeConfig
from r1omni.serve.errors import ServeError

__all__ = ["ClipRequest", "PathRequest", "FLAGS", "FLAG_WORDS", "receive_upload", "read_path_request",
           "resolve_media_path", "check_clip", "sample_for_clip", "parse_flag", "FORM_ALLOWANCE_BYTES", "read_body",
           "store_upload"]

logger = logging.getLogger(__name__)

# Room in a multipart body for boundaries, part headers and the small form fields besides the file.
FORM_ALLOWANCE_BYTES = 64 * 1024
_MAX_FIELD_BYTES = 1024
_MAX_JSON_BYTES = 64 * 1024
_SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
FLAGS = ("explain", "face_crop", "transcribe")
"""The per-request options: a query parameter, a form field or a JSON key of that name sets each."""
FLAG_WORDS = ("true", "false", "1", "0", "yes", "no", "on", "off")
"""What a form field of :data:`FLAGS` may say (any case); the OpenAPI form lists them."""


@dataclass
class ClipRequest:
    """One clip to answer for: where it is, what the client called it, whether the server owns it."""

    id: str
    path: Path
    name: str                 # the client's file name or requested path: the only name messages show
    temporary: bool           # an upload the server must remove when the request ends
    explain: bool = False
    face_crop: bool = False
    transcribe: bool = False
    size_bytes: int = 0

    def discard(self) -> None:
        """Remove the file if it is a temporary upload (idempotent)."""
        if self.temporary:
            self.path.unlink(missing_ok=True)


class PathRequest(BaseModel):
    """JSON body of ``POST /v1/predict`` for a file already on the server."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")
    """Relative to the media root (or absolute, inside it): not blank, no NUL byte."""
    explain: bool = False
    """Also compute the per-modality attribution (slower: about nine model passes)."""
    face_crop: bool = False
    """Crop the frames to the largest face (the clip is used whole when none is found)."""
    transcribe: bool = False
    """Recognise the speech and use it as the subtitle (needs the server's ``asr`` extra)."""


def parse_flag(value: str | None, name: str) -> bool:
    """A boolean query or form value: 1/true/yes/on or 0/false/no/off (any case)."""
    if value is None:
        return False
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ServeError(422, "invalid_request", f"{name}={value!r} is not a boolean (use true or false)")


def _format_bytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def _too_large(config: ServeConfig) -> ServeError:
    return ServeError(413, "upload_too_large",
                      f"the upload is larger than the limit of {_format_bytes(config.max_upload_bytes)}")


def _storage_error(err: OSError) -> ServeError:
    """The server failing to store an upload, said plainly (the client can do nothing but retry later)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return ServeError(507, "insufficient_storage", "no space left on the server to store the upload; "
                                                       "retry later or send a smaller file")
    reason = err.strerror or type(err).__name__
    return ServeError(500, "storage_error", f"the server cannot store the upload ({reason})")


async def _body(request: Request, config: ServeConfig) -> AsyncIterator[bytes]:
    """The request body chunk by chunk: 408 when nothing arrives for ``upload_idle_timeout_seconds``, and
    a plain 400 (no traceback in the log; the reply reaches no one) when the client goes away."""
    chunks = request.stream().__aiter__()
    idle_seconds = config.upload_idle_timeout_seconds
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), idle_seconds)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise ServeError(408, "upload_timeout", f"the request body stopped arriving (nothing for "
                                                    f"{idle_seconds:g} s); send it again") from None
        except ClientDisconnect:
            raise ServeError(400, "client_disconnected", "the client closed the connection before the body "
                                                         "was complete") from None
        yield chunk


class _MultipartUpload:
    """Callbacks for python-multipart's streaming parser: the ``file`` part goes to a temporary file,
    small text fields are kept, everything else is refused."""

    def __init__(self, boundary: bytes, config: ServeConfig, request_id: str) -> None:
        self.config = config
        self.request_id = request_id
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_path: Path | None = None
        self.file_bytes = 0
        self._file = None
        self._part: str | None = None          # "file", or the name of a text field being read
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self.parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        })

    def _part_begin(self) -> None:
        self._headers, self._part = {}, None
        self._value.clear()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition"))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            # Only the documented fields (the OpenAPI form has no others), each once.
            if name not in FLAGS:
                raise ServeError(400, "bad_multipart", f"unknown form field {name!r}; the form takes 'file' and "
                                                       f"optionally {', '.join(FLAGS)}")
            if name in self.fields:
                raise ServeError(400, "bad_multipart", f"form field {name!r} repeated")
            self._part = name
            return
        if name != "file":
            raise ServeError(400, "bad_multipart", f"send the clip in the form field 'file', not {name!r}")
        if self.file_path is not None:
            raise ServeError(400, "bad_multipart", "send one file per request")
        self.filename = Path(filename.decode("utf-8", "replace").replace("\\", "/")).name or "upload"
        suffix = Path(self.filename).suffix.lower()
        # The suffix is kept as a hint for the demuxer; anything odd is dropped, never trusted.
        suffix = suffix if _SAFE_SUFFIX.fullmatch(suffix) else ""
        try:
            fd, name_on_disk = tempfile.mkstemp(prefix=f"r1omni-{self.request_id}-", suffix=suffix,
                                                dir=self.config.upload_dir)
        except OSError as err:
            raise _storage_error(err) from None
        self.file_path = Path(name_on_disk)
        self._file = os.fdopen(fd, "wb")
        self._part = "file"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.file_bytes += end - start
            if self.file_bytes > self.config.max_upload_bytes:
                raise _too_large(self.config)
            try:
                self._file.write(data[start:end])
            except OSError as err:
                raise _storage_error(err) from None
        elif self._part is not None:
            self._value.extend(data[start:end])
            if len(self._value) > _MAX_FIELD_BYTES:
                raise ServeError(413, "field_too_large", f"form field {self._part!r} is over {_MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._part == "file":
            file, self._file = self._file, None
            try:
                file.close()   # flushes the last buffered bytes, which may not fit either
            except OSError as err:
                raise _storage_error(err) from None
        elif self._part is not None:
            self.fields[self._part] = self._value.decode("utf-8", "replace")
        self._part = None

    def discard(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:
                pass   # a full disk cannot take the buffered rest; the file goes anyway
        if self.file_path is not None:
            self.file_path.unlink(missing_ok=True)


async def receive_upload(request: Request, config: ServeConfig, request_id: str, flags: dict[str, bool]) -> ClipRequest:
    """Stream a ``multipart/form-data`` upload into a temporary file (see the module docstring).

    ``flags`` are the query's values of :data:`FLAGS`; a form field of the same name may also set each."""
    body_limit = config.max_upload_bytes + FORM_ALLOWANCE_BYTES
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ServeError(400, "bad_request", f"Content-Length {declared!r} is not a number")
        if int(declared) > body_limit:
            logger.info("request %s: refused, Content-Length %s bytes", request_id, declared)
            raise _too_large(config)
    _, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ServeError(400, "bad_multipart", "multipart/form-data without a boundary")
    try:
        upload = _MultipartUpload(boundary, config, request_id)
    except FormParserError as err:   # e.g. a boundary over python-multipart's 256 characters
        raise ServeError(400, "bad_multipart", f"malformed multipart header ({err})") from None
    received = 0
    done = False
    try:
        async for chunk in _body(request, config):
            received += len(chunk)
            if received > body_limit:
                raise _too_large(config)
            # Synchronous disk writes in the event loop: chunks are small and the page cache absorbs
            # them; a thread hop per chunk would cost more than it saves.
            upload.parser.write(chunk)
        upload.parser.finalize()
        done = True
    except FormParserError as err:
        raise ServeError(400, "bad_multipart", f"malformed multipart body ({err})") from None
    finally:
        if not done:
            upload.discard()
            logger.info("request %s: upload aborted after %d bytes", request_id, received)
    if upload.file_path is None:
        raise ServeError(422, "missing_file", "the form has no file in the field 'file'")
    clip = ClipRequest(id=request_id, path=upload.file_path, name=upload.filename or "upload", temporary=True,
                       size_bytes=upload.file_bytes)
    try:
        for name in FLAGS:   # the form's value is checked even when the query already set the flag
            from_form = parse_flag(upload.fields.get(name), name)
            setattr(clip, name, flags.get(name, False) or from_form)
    except ServeError:
        clip.discard()
        raise
    return clip


async def read_body(request: Request, config: ServeConfig, limit_bytes: int) -> bytes:
    """The whole request body; 413 as soon as its Content-Length or its byte count passes ``limit_bytes``."""
    too_large = ServeError(413, "body_too_large", f"a JSON request body is limited to {_format_bytes(limit_bytes)}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise too_large
    body = bytearray()
    async for chunk in _body(request, config):
        body.extend(chunk)
        if len(body) > limit_bytes:
            raise too_large
    return bytes(body)


def store_upload(data: bytes, suffix: str, name: str, config: ServeConfig, request_id: str) -> ClipRequest:
    """``data`` (a clip the request carried inline) as a temporary upload named ``name`` in messages;
    413 over ``max_upload_bytes``, 507 on a full disk. Blocking."""
    if len(data) > config.max_upload_bytes:
        raise _too_large(config)
    suffix = suffix.lower() if _SAFE_SUFFIX.fullmatch(suffix.lower()) else ""   # a demuxer hint, never trusted
    try:
        fd, name_on_disk = tempfile.mkstemp(prefix=f"r1omni-{request_id}-", suffix=suffix, dir=config.upload_dir)
    except OSError as err:
        raise _storage_error(err) from None
    path = Path(name_on_disk)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except OSError as err:
        path.unlink(missing_ok=True)
        raise _storage_error(err) from None
    return ClipRequest(id=request_id, path=path, name=name, temporary=True, size_bytes=len(data))


async def read_path_request(request: Request, config: ServeConfig, request_id: str,
                            flags: dict[str, bool]) -> ClipRequest:
    """A JSON ``{"path": ..., "explain": ...}`` request for a file under the media root."""
    body = await read_body(request, config, _MAX_JSON_BYTES)
    try:
        payload = PathRequest.model_validate_json(body)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors())
        raise ServeError(422, "invalid_request", f'expected {{"path": "...", "explain": false}} ({problems})') from None
    if config.media_root is None:
        raise ServeError(403, "paths_disabled", "this server reads no server paths (no media root is configured); "
                                                "upload the file instead")
    path = resolve_media_path(Path(config.media_root).resolve(), payload.path)
    return ClipRequest(id=request_id, path=path, name=payload.path, temporary=False,
                       **{name: flags.get(name, False) or getattr(payload, name) for name in FLAGS},
                       size_bytes=path.stat().st_size if path.is_file() else 0)


def resolve_media_path(root: Path, requested: str) -> Path:
    """``requested`` inside ``root`` (already resolved), with ``..`` and symlinks followed first.

    Absolute paths are allowed when they land inside the root. Raises 403 for anything outside
    (without saying whether it exists) and 404 for a missing path inside."""
    if not requested.strip() or "\x00" in requested:
        raise ServeError(422, "invalid_path", "path must be a non-empty string without NUL bytes")
    try:
        candidate = (root / requested).resolve()
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ServeError(422, "invalid_path", f"cannot resolve {requested!r} ({type(err).__name__})") from None
    if not candidate.is_relative_to(root):
        raise ServeError(403, "forbidden_path", f"{requested!r} is outside the media root")
    if not candidate.exists():
        raise ServeError(404, "not_found", f"{requested!r} does not exist under the media root")
    if not (candidate.is_file() or candidate.is_dir()):  # a FIFO or device would block the decoder
        raise ServeError(422, "invalid_path", f"{requested!r} is neither a file nor a frame folder")
    return candidate


def check_clip(clip: ClipRequest, config: ServeConfig, max_seconds: float | None = None) -> MediaInfo:
    """Probe the clip's headers; refuse unreadable media (422) and clips over ``max_seconds`` (413; default
    the config's ``max_duration_seconds``). Blocking."""
    limit = config.max_duration_seconds if max_seconds is None else max_seconds
    try:
        info = probe(clip.path)
    except MediaError as err:
        raise ServeError(422, "unreadable_media", f"{clip.name}: {err.reason}") from None
    if info.duration_seconds is not None and info.duration_seconds > limit:
        raise ServeError(413, "clip_too_long", f"{clip.name}: the clip lasts {info.duration_seconds:.1f} s; "
                                               f"the limit is {limit:g} s")
    if config.modalities == "audio" and not info.has_audio:
        raise ServeError(422, "unreadable_media", f"{clip.name}: no audio stream (this server reads audio only)")
    if config.modalities == "video" and not info.has_video:
        raise ServeError(422, "unreadable_media", f"{clip.name}: no video stream (this server reads video only)")
    return info


def sample_for_clip(clip: ClipRequest, info: MediaInfo) -> Sample:
    """A bare sample; the headers (not the file name) decide whether it is a video or a soundtrack."""
    if info.has_video:
        return Sample(id=clip.id, corpus="serve", video=str(clip.path))
    return Sample(id=clip.id, corpus="serve", audio=str(clip.path))
