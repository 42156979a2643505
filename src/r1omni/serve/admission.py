"""Admission control: how many requests may be in flight at once, and the 503 past that.

A request counts from the moment its body has arrived (an upload on disk, or a JSON path checked)
until its answer is sent or its timeline stream ends. A request still sending its body holds no place:
forty clients that stall mid-upload would otherwise lock every other client out for as long as they
keep their connections open. Those are bounded instead by the upload's idle timeout
(``ServeConfig.upload_idle_timeout_seconds``), which drops a body that stops arriving.

The cap (``max_queue + max_batch_size``) bounds the uploads that wait on disk for the model. All of it
runs on the event loop's thread, so a plain counter is enough. Not here: the worker's own queue limit
(``r1omni.serve.worker``), which refuses a job when ``max_queue`` clips already wait.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from r1omni.serve.errors import ServeError

__all__ = ["Admission"]

logger = logging.getLogger(__name__)


class Admission:
    """The in-flight cap of one app (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def check(self, request_id: str) -> None:
        """Refuse with 503 at once when the server is already full (before reading a body it would refuse)."""
        if self.in_flight >= self.limit:
            logger.warning("request %s: refused, %d requests in progress", request_id, self.in_flight)
            raise ServeError(503, "queue_full", f"the server is busy ({self.in_flight} requests in progress); "
                                                "retry later", headers={"Retry-After": "1"})

    def enter(self, request_id: str) -> None:
        """Take a place (503 when none is left); the caller calls :meth:`leave` once, when it is done."""
        self.check(request_id)
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    @contextmanager
    def place(self, request_id: str) -> Iterator[None]:
        """``with admission.place(request_id):`` holds a place for the block."""
        self.enter(request_id)
        try:
            yield
        finally:
            self.leave()
