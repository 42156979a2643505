"""The model's one thread: a bounded queue of clips, batched into single generate calls.

Request handlers :meth:`BatchWorker.submit` a :class:`Job` and await its future; the worker thread
takes the oldest waiting job, waits up to ``batch_window_seconds`` (counted from that job's arrival,
so a backlog is taken at once) for up to ``max_batch_size`` jobs, and answers them together:

* decode each clip (``r1omni.clips.ClipLoader``); a clip that fails gets its own error, the rest
  go on;
* clips without ``explain``: one ``policy.prepare`` + ``policy.generate`` for all of them (greedy),
  each completion parsed by ``r1omni.template.parse_completion`` — what
  ``r1omni.inference.predict_files`` does, over samples whose modality the server already knows;
* clips with ``explain``: ``r1omni.explain.attribute`` (its factual run is the answer).

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
from dataclasses import dataclass, field

import torch

from r1omni.clips import ClipLoader
from r1omni.explain.attribution import ClipAttribution, attribute
from r1omni.labels import LabelSet
from r1omni.media import MediaError
from r1omni.models import Policy, SamplingConfig
from r1omni.schema import Sample
from r1omni.template import parse_completion

__all__ = ["Job", "ClipResult", "BatchWorker", "QueueFull", "WorkerClosed"]

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds ``max_queue`` waiting jobs."""


class WorkerClosed(Exception):
    """The worker is stopping (or stopped) and takes no more jobs."""


@dataclass
class Job:
    sample: Sample
    explain: bool = False
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued_at: float = field(default_factory=time.perf_counter)


@dataclass
class ClipResult:
    """What the worker knows about one clip. ``error`` set means the clip could not be decoded."""

    think: str | None = None
    answer: str | None = None
    label: str | None = None
    format_ok: bool = False
    output: str | None = None
    error: str | None = None
    attribution: ClipAttribution | None = None
    batch_size: int = 1
    timings: dict[str, float] = field(default_factory=dict)


class BatchWorker:
    """Owns the policy; see the module docstring. ``batch_sizes`` records every batch run."""

    def __init__(self, policy: Policy, labels: LabelSet, max_queue: int = 32, max_batch_size: int = 8,
                 batch_window_seconds: float = 0.02, max_new_tokens: int = 512, modalities: str = "video_audio",
                 prompt: str = "inference", explain_method: str = "blank") -> None:
        self.policy = policy
        self.labels = labels
        self.max_queue = max_queue
        self.max_batch_size = max_batch_size
        self.batch_window_seconds = batch_window_seconds
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens)
        self.modalities = modalities
        self.prompt = prompt
        self.explain_method = explain_method
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
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} clips are waiting (max_queue={self.max_queue})")
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
            deadline = self._queue[0].enqueued_at + self.batch_window_seconds
            while len(self._queue) < self.max_batch_size and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            take = min(self.max_batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(take)]

    def _run(self) -> None:
        self.policy.module.eval()
        while (jobs := self._next_batch()) is not None:
            # Jobs whose request timed out while waiting are dropped here, unanswered.
            jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            try:
                results = self.run_batch(jobs)
            except Exception as err:  # noqa: BLE001 — a failing batch must not kill the server: each
                # request gets the error (a 500 naming it), and the worker goes on with the next batch.
                logger.exception("batch of %d clips failed", len(jobs))
                for job in jobs:
                    job.future.set_exception(err)
                continue
            for job, result in zip(jobs, results):
                job.future.set_result(result)

    def run_batch(self, jobs: list[Job]) -> list[ClipResult]:
        """Answer ``jobs`` (see the module docstring); one result per job, in order."""
        started = time.perf_counter()
        self.batch_sizes.append(len(jobs))
        loader = ClipLoader(num_frames=self.policy.num_frames, prompt=self.prompt, modalities=self.modalities,
                            cache=True)  # attribution decodes each clip again: keep the first decode
        results = [ClipResult(batch_size=len(jobs)) for _ in jobs]
        clips = {}
        for index, (job, result) in enumerate(zip(jobs, results)):
            result.timings["queue_seconds"] = started - job.enqueued_at
            tick = time.perf_counter()
            try:
                clips[index] = loader.load(job.sample)
            except MediaError as err:
                result.error = err.reason
            result.timings["decode_seconds"] = time.perf_counter() - tick
        plain = [i for i in clips if not jobs[i].explain]
        explained = [i for i in clips if jobs[i].explain]
        with torch.no_grad():
            if plain:
                tick = time.perf_counter()
                batch = self.policy.prepare([clips[i] for i in plain])
                prepared = time.perf_counter()
                completions = self.policy.generate(batch, num_return_sequences=1, sampling=self.sampling)
                generated = time.perf_counter()
                for i, text in zip(plain, completions.texts):
                    self._fill(results[i], text)
                    results[i].timings.update(preprocess_seconds=prepared - tick, generate_seconds=generated - prepared)
            if explained:
                tick = time.perf_counter()
                attributions, _ = attribute(self.policy, [jobs[i].sample for i in explained], loader,
                                            method=self.explain_method, batch_size=len(explained),
                                            max_new_tokens=self.sampling.max_new_tokens)
                seconds = time.perf_counter() - tick
                by_id = {a.id: a for a in attributions}
                for i in explained:
                    found = by_id[jobs[i].sample.id]
                    self._fill(results[i], found.output)
                    results[i].attribution = found
                    results[i].timings["attribution_seconds"] = seconds
        self.clips_answered += len(jobs)
        logger.info("batch of %d clips (%d explained, %d unreadable) in %.3f s", len(jobs), len(explained),
                    len(jobs) - len(clips), time.perf_counter() - started)
        return results

    def _fill(self, result: ClipResult, text: str) -> None:
        parsed = parse_completion(text, self.labels)
        result.output, result.think, result.answer = text, parsed.think, parsed.answer
        result.label, result.format_ok = parsed.label, parsed.format_ok
