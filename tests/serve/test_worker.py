"""The batching worker on its own: batch collection, the bounded queue, cancelled jobs, shutdown."""

from __future__ import annotations

import time

import pytest

from r1omni.schema import Sample
from r1omni.serve.config import ServeConfig
from r1omni.serve.worker import BatchWorker, Job, QueueFull, WorkerClosed


@pytest.fixture
def make_worker(stub_factory):
    workers: list[BatchWorker] = []

    def make(stub=None, **options) -> BatchWorker:
        worker = BatchWorker(stub or stub_factory(), ServeConfig(label_set="synth", **options))
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop(timeout_seconds=10)


def job(media_dir, name: str = "voice.wav", explain: bool = False) -> Job:
    path = str(media_dir / name)
    sample = Sample(id=f"{name}-{time.perf_counter_ns()}", corpus="serve",
                    audio=path if name.endswith(".wav") else None, video=None if name.endswith(".wav") else path)
    return Job(sample, explain=explain)


def test_waiting_jobs_are_answered_in_one_batch(make_worker, stub_factory, media_dir):
    stub = stub_factory()
    worker = make_worker(stub, max_batch_size=3, batch_window_seconds=0.5)
    futures = [worker.submit(job(media_dir, name)) for name in ("voice.wav", "clip.mp4", "voice.wav", "clip.mp4")]
    worker.start()
    results = [future.result(timeout=30) for future in futures]
    assert stub.batch_sizes == [3, 1] and list(worker.batch_sizes) == [3, 1]
    assert [r.prediction.reply.label for r in results] == ["angry"] * 4
    assert [r.batch_size for r in results] == [3, 3, 3, 1]
    assert worker.clips_answered == 4


def test_a_clip_the_model_cannot_read_fails_alone(media_dir, tmp_path):
    from serve_fakes import tone

    from r1omni.media import write_audio
    from r1omni.models import init_preset

    short = write_audio(tmp_path / "short.wav", tone(0.01))     # 10 ms: too short for one audio token
    worker = BatchWorker(init_preset("qwen2.5-omni-tiny", seed=0), ServeConfig(label_set="synth", max_new_tokens=4))
    jobs = [job(media_dir, "voice.wav"), Job(Sample(id="short", corpus="serve", audio=str(short))),
            job(media_dir, "clip.mp4")]
    results = worker.run_batch(jobs)
    records = [r.prediction for r in results]
    assert [r.error is None for r in records] == [True, False, True]
    assert "too short" in records[1].error and all(isinstance(records[i].reply.output, str) for i in (0, 2))


def test_queue_is_bounded(make_worker, media_dir):
    worker = make_worker(max_queue=2)  # not started: nothing leaves the queue
    worker.submit(job(media_dir))
    worker.submit(job(media_dir))
    with pytest.raises(QueueFull, match="max_queue=2"):
        worker.submit(job(media_dir))


def test_cancelled_jobs_are_skipped(make_worker, stub_factory, media_dir):
    stub = stub_factory()
    worker = make_worker(stub, batch_window_seconds=0)
    cancelled, kept = job(media_dir), job(media_dir)
    worker.submit(cancelled)
    worker.submit(kept)
    assert cancelled.future.cancel()
    worker.start()
    assert kept.future.result(timeout=30).prediction.reply.label == "angry"
    assert stub.batch_sizes == [1]


def test_stop_fails_waiting_jobs_and_refuses_new_ones(make_worker, media_dir):
    worker = make_worker()
    waiting = worker.submit(job(media_dir))
    worker.stop()
    with pytest.raises(WorkerClosed):
        waiting.result(timeout=1)
    with pytest.raises(WorkerClosed):
        worker.submit(job(media_dir))
