"""The one error type of the server: an HTTP status, a short code and a message for the client."""

from __future__ import annotations

__all__ = ["ServeError"]


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
