"""The one error type of the server (an HTTP status, a short code and a message for the client), and the
handlers that turn it, and every other failure of a request, into the JSON ``{"error": code, "message": text}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ServeError", "add_error_handlers"]


class ServeError(Exception):
    """A request the server answers with ``status`` and ``{"error": code, "message": message}``.

    ``message`` is shown to the client: it names the problem (and the client's own file name),
    never a server path.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        super().__init__(f"{status} {code}: {message}")


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Every error of ``app`` as JSON with its status: a :class:`ServeError`, an HTTP error, an invalid
    request (422) and, with only its type named, any other failure (500)."""
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
