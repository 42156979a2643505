"""The one error type of the server (an HTTP status, a short code and a message for the client), and the
handlers that turn it, and every other failure of a request, into the JSON ``{"error": code, "message": text}``.

The OpenAI-compatible routes (:data:`OPENAI_PATHS`) answer the same errors in OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, which OpenAI's clients read and raise as their own
exceptions (``openai.BadRequestError`` ...)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ServeError", "add_error_handlers", "openai_error", "OPENAI_PATHS"]

OPENAI_PATHS = ("/v1/chat/", "/v1/models")
"""Path prefixes whose errors take OpenAI's shape (``/v1/model``, r1omni's own, keeps the plain one)."""


class ServeError(Exception):
    """A request the server answers with ``status`` and ``{"error": code, "message": message}``.

    ``message`` is shown to the client: it names the problem (and the client's own file name),
    never a server path. ``param`` names the offending part of an OpenAI-style request
    (``messages[0].content[1].video_url``), shown in that shape only.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 param: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.param = param
        super().__init__(f"{status} {code}: {message}")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> dict:
    """An error as OpenAI's API words it: client errors are ``invalid_request_error`` (``not_found_error``
    for 404), the server's own failures ``server_error``."""
    kind = "not_found_error" if status == 404 else "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error_response(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                    param: str | None = None) -> JSONResponse:
    if request.url.path.startswith(OPENAI_PATHS):
        return JSONResponse(openai_error(status, code, message, param), status_code=status, headers=headers)
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Every error of ``app`` as JSON with its status: a :class:`ServeError`, an HTTP error, an invalid
    request (422) and, with only its type named, any other failure (500)."""
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        return _error_response(request, err.status, err.code, err.message, err.headers, err.param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error_response(request, err.status_code, "http_error", str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return _error_response(request, 422, "invalid_request", problems)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        # Starlette logs the traceback and re-raises after this response; the client gets JSON.
        return _error_response(request, 500, "internal_error", f"the server failed ({type(err).__name__})")
