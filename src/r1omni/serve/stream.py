"""The NDJSON stream of ``POST /v1/timeline``: a ``start`` line, one ``window`` line per answered window
and a last ``summary`` or ``error`` line, written as the worker answers the windows.

The stream owns its job and its upload from the first line on: when it ends for any reason (done,
failed, or the client went away) the job is stopped at its next window batch and the upload removed.
Whatever the job ends with is retrieved even when no one reads it any more, so a client that leaves
does not leave "Future exception was never retrieved" in the log.

Not here: admission and the checks before the stream starts (``r1omni.serve.app``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from r1omni.media import MediaInfo
from r1omni.serve.inputs import ClipRequest
from r1omni.serve.schemas import TimelineWindow, answer_fields
from r1omni.serve.worker import BatchWorker, Job
from r1omni.timeline import TooManyWindows, WindowPrediction

__all__ = ["stream_timeline", "encode_window", "ndjson"]


def ndjson(line: dict) -> bytes:
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def encode_window(window: WindowPrediction, done: int, total: int) -> TimelineWindow:
    """One answered window as its line of the timeline stream: its answer as a clip's (cue claims per
    clause, against the cue levels the answer carries)."""
    return TimelineWindow(index=window.index, start_seconds=window.start_seconds, end_seconds=window.end_seconds,
                          **answer_fields(window.reply), transcript=window.transcript, error=window.error,
                          done=done, total=total)


def _failure_reason(err: BaseException) -> str:
    """What the client is told about a failed job: the media's or the limit's own words, else only the
    error's type (a server fault's details stay in the server's log)."""
    if isinstance(err, TooManyWindows):
        return str(err)
    return err.reason if hasattr(err, "reason") else f"the server failed ({type(err).__name__})"


def _retrieve(future: asyncio.Future) -> None:
    """Mark the job's outcome as seen (it is reported in the stream, or no one is left to tell)."""
    if not future.cancelled():
        future.exception()


async def stream_timeline(worker: BatchWorker, job: Job, clip: ClipRequest, info: MediaInfo) -> AsyncIterator[bytes]:
    """The NDJSON lines of one timeline job as its windows are answered (see the module docstring)."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue = asyncio.Queue()
    job.on_window = lambda window, done, total: loop.call_soon_threadsafe(arrived.put_nowait, (window, done, total))
    finished = asyncio.wrap_future(job.future)
    finished.add_done_callback(_retrieve)
    waiting: asyncio.Future | None = None
    try:
        yield ndjson({"type": "start", "id": clip.id, "duration_seconds": info.duration_seconds,
                      "window_seconds": job.timeline.window_seconds, "split": job.timeline.split})
        while True:
            waiting = asyncio.ensure_future(arrived.get())
            await asyncio.wait({waiting, finished}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                break
            yield ndjson(encode_window(*waiting.result()).model_dump())
        while not arrived.empty():
            yield ndjson(encode_window(*arrived.get_nowait()).model_dump())
        try:
            result = finished.result()
        except Exception as err:  # noqa: BLE001 — reported in the stream, whose 200 status is already sent
            message = f"{clip.name}: {_failure_reason(err)}"
            yield ndjson({"type": "error", "error": "timeline_failed", "message": message})
            return
        yield ndjson({"type": "summary", "summary": result.summary})
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
        job.cancel()
        clip.discard()
