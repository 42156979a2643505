"""The model's one thread: a bounded queue of clips, batched into single generate calls.

Request handlers :meth:`BatchWorker.submit` a :class:`Job` and await its future; the worker thread
takes the oldest waiting job, waits up to ``batch_window_seconds`` (counted from that job's arrival,
so a backlog is taken at once) for up to ``max_batch_size`` jobs, and answers them together:

* decode the clips (``ClipLoader.load_many``, one loader per combination of the jobs' face-crop and
  transcript options); a clip that fails gets its own error, the rest go on;
* clips without ``explain``: ``r1omni.inference.answer_clips`` (greedy, one generate call, cue
  claims checked), the same path as ``r1omni predict`` and ``r1omni eval``, under the server's
  label set;
* clips with ``explain``: ``r1omni.explain.attribute`` (its factual run is the answer, whose claims
  ``r1omni.inference.check_answers`` checks as for any clip).

Each clip's result is its :class:`~r1omni.inference.Prediction` (the answer record, or the error)
plus the batch size and the attribution.

A job with ``timeline`` options is a long recording: it runs window batch after window batch
(``r1omni.timeline.predict_timeline``), handing each window to ``on_window`` as it is answered, and
stops between batches once ``cancel()`` is called (its client went away). Between two of its window
batches the worker answers one batch of the clips that queued meanwhile, so a recording of an hour
delays a clip by one window batch, not by the whole recording. A recording that cannot be read (or
has more windows than allowed) fails its own job, logged as one line.

All model calls happen on this thread, so torch runs one job at a time. A full queue raises
:class:`QueueFull` at once (the route answers 503); a job whose future was cancelled (its request
timed out) before the worker reached it is skipped. Not here: HTTP, limits, temporary files.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from r1omni.clips import ClipLoader, MediaCache
from r1omni.explain.attribution import ClipAttribution, attribute
from r1omni.inference import Prediction, answer_clips, check_answers, parse_answer
from r1omni.labels import get_label_set
from r1omni.media import MediaError
from r1omni.models import Policy, SamplingConfig
from r1omni.schema import Sample
from r1omni.serve.config import ServeConfig
from r1omni.timeline import TimelineOptions, TooManyWindows, WindowPrediction, predict_timeline, summarize_timeline

__all__ = ["Job", "ClipResult", "TimelineResult", "TimelineCancelled", "BatchWorker", "QueueFull", "WorkerClosed"]

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds ``max_queue`` waiting jobs."""


class WorkerClosed(Exception):
    """The worker is stopping (or stopped) and takes no more jobs."""


class TimelineCancelled(Exception):
    """A timeline job was cancelled between window batches."""


@dataclass
class Job:
    sample: Sample
    explain: bool = False
    face_crop: bool = False
    transcribe: bool = False
    timeline: TimelineOptions | None = None
    """Set for a long recording: answered window by window (the future's result is a :class:`TimelineResult`)."""
    on_window: Callable[[WindowPrediction, int, int], None] | None = None
    """Called on the worker thread with each answered window, the windows done and their total."""
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued_at: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop a timeline job at its next window batch (and drop a job not yet started)."""
        self.cancelled.set()
        self.future.cancel()


@dataclass
class TimelineResult:
    windows: list[WindowPrediction]
    summary: dict


@dataclass
class ClipResult:
    """What the worker knows about one clip: its :class:`~r1omni.inference.Prediction` (the answer, or in
    ``error`` why the clip could not be decoded), how many clips shared its model call, and its
    attribution when asked."""

    prediction: Prediction
    batch_size: int = 1
    attribution: ClipAttribution | None = None


class BatchWorker:
    """Owns the policy; see the module docstring. ``batch_sizes`` records every batch run."""

    def __init__(self, policy: Policy, config: ServeConfig) -> None:
        self.policy = policy
        self.config = config
        self.labels = get_label_set(config.label_set)
        self.sampling = SamplingConfig(max_new_tokens=config.max_new_tokens)
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        self.clips_answered = 0
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the handlers' side -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the worker is already started")
        self._thread = threading.Thread(target=self._run, name="r1omni-serve-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float | None = None) -> None:
        """Refuse new jobs, fail the waiting ones with :class:`WorkerClosed`, finish the running batch."""
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(WorkerClosed("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def submit(self, job: Job) -> concurrent.futures.Future:
        with self._cond:
            if self._closed:
                raise WorkerClosed("the server is shutting down")
            if len(self._queue) >= self.config.max_queue:
                raise QueueFull(f"{len(self._queue)} clips are waiting (max_queue={self.config.max_queue})")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the worker thread ----------------------------------------------------------------------------
    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            if self._queue[0].timeline is not None:   # a recording runs alone
                return [self._queue.popleft()]
            deadline = self._queue[0].enqueued_at + self.config.batch_window_seconds
            while len(self._queue) < self.config.max_batch_size and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = []
            while self._queue and len(batch) < self.config.max_batch_size and self._queue[0].timeline is None:
                batch.append(self._queue.popleft())
            return batch

    def _waiting_clips(self) -> list[Job]:
        """Up to a batch of the clip jobs queued now (a timeline's turn: no batch window is waited for)."""
        with self._cond:
            batch = []
            while self._queue and len(batch) < self.config.max_batch_size and self._queue[0].timeline is None:
                batch.append(self._queue.popleft())
            return batch

    def _run(self) -> None:
        self.policy.module.eval()
        while (jobs := self._next_batch()) is not None:
            self._answer(jobs)

    def _answer(self, jobs: list[Job]) -> None:
        """Run one batch of clip jobs, or one timeline job, and settle their futures."""
        # Jobs whose request timed out while waiting are dropped here, unanswered.
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        try:
            results = [self.run_timeline(jobs[0])] if jobs[0].timeline is not None else self.run_batch(jobs)
        except (TimelineCancelled, MediaError, TooManyWindows) as err:
            logger.info("timeline %s", f"unreadable: {err.reason}" if isinstance(err, MediaError) else err)
            jobs[0].future.set_exception(err)
            return
        except Exception as err:  # noqa: BLE001 — a failing batch must not kill the server: each
            # request gets the error (a 500 naming it), and the worker goes on with the next batch.
            logger.exception("batch of %d clips failed", len(jobs))
            for job in jobs:
                job.future.set_exception(err)
            return
        for job, result in zip(jobs, results):
            job.future.set_result(result)

    def _loader(self, job: Job, cache: bool = True) -> ClipLoader:
        return ClipLoader.for_policy(self.policy, prompt=self.config.prompt, modalities=self.config.modalities,
                                     face_crop=job.face_crop, transcribe=job.transcribe,
                                     cache=MediaCache() if cache else None)

    def run_batch(self, jobs: list[Job]) -> list[ClipResult]:
        """Answer ``jobs`` (see the module docstring); one result per job, in order."""
        started = time.perf_counter()
        self.batch_sizes.append(len(jobs))
        results = [ClipResult(Prediction(path=job.sample.media_path), batch_size=len(jobs)) for job in jobs]
        records = [result.prediction for result in results]
        groups: dict[tuple[bool, bool], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.face_crop, job.transcribe), []).append(i)
        clips, loaders, unreadable = {}, {}, 0
        for members in groups.values():
            # Cached: attribution decodes each clip again, and must see what the answer saw.
            loader = self._loader(jobs[members[0]])
            loaded = loader.load_many([jobs[i].sample for i in members])
            unreadable += len(loaded.failures)
            kept = iter(loaded.clips)
            for i in members:
                sample = jobs[i].sample
                records[i].timings.update(queue_seconds=started - jobs[i].enqueued_at,
                                          decode_seconds=loaded.decode_seconds[sample.id])
                if (error := loaded.error_of(sample)) is not None:
                    records[i].error = error.reason
                    continue
                clips[i], loaders[i], records[i].notes = next(kept), loader, loaded.notes[sample.id]
        plain = [i for i in sorted(clips) if not jobs[i].explain]
        explained = [i for i in sorted(clips) if jobs[i].explain]
        with torch.no_grad():
            answers = answer_clips(self.policy, [clips[i] for i in plain], self.sampling, self.labels)
            for i, answer in zip(plain, answers):
                records[i].reply = answer
                records[i].timings.update(answer.timings)
            by_loader: dict[int, list[int]] = {}
            for i in explained:
                by_loader.setdefault(id(loaders[i]), []).append(i)
            for members in by_loader.values():
                tick = time.perf_counter()
                attributions, _ = attribute(self.policy, [jobs[i].sample for i in members], loaders[members[0]],
                                            self.labels, method=self.config.explain_method,
                                            batch_size=len(members), max_new_tokens=self.sampling.max_new_tokens)
                seconds = time.perf_counter() - tick
                by_id = {a.id: a for a in attributions}
                for i in members:
                    found = by_id[jobs[i].sample.id]
                    records[i].reply = parse_answer(found.output, self.labels)
                    check_answers([records[i].reply], [clips[i]])
                    results[i].attribution = found
                    records[i].timings["attribution_seconds"] = seconds
        self.clips_answered += len(jobs)
        logger.info("batch of %d clips (%d explained, %d unreadable) in %.3f s", len(jobs), len(explained),
                    unreadable, time.perf_counter() - started)
        return results

    def run_timeline(self, job: Job) -> TimelineResult:
        """A long recording window batch by window batch; each window goes to ``job.on_window`` as it is
        answered. A recording that cannot be read raises :class:`~r1omni.media.MediaError`."""
        started = time.perf_counter()
        windows: list[WindowPrediction] = []
        progress = {"total": 0}

        def note_progress(done: int, total: int) -> None:
            progress["total"] = total
            if job.cancelled.is_set():
                raise TimelineCancelled(f"cancelled after {done} of {total} windows")
            if done and (waiting := self._waiting_clips()):   # between window batches: the clips' turn
                self._answer(waiting)

        with torch.no_grad():
            for window in predict_timeline(self.policy, job.sample.media_path, job.timeline,
                                           self._loader(job, cache=False), self.sampling, self.labels,
                                           progress=note_progress):
                windows.append(window)
                if job.on_window is not None:
                    job.on_window(window, len(windows), progress["total"])
        self.clips_answered += len(windows)
        logger.info("timeline of %d windows in %.3f s", len(windows), time.perf_counter() - started)
        return TimelineResult(windows, summarize_timeline(windows))
