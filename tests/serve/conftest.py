"""Fixtures for the server tests: a tiny model taught one answer, generated clips, a slow stub model,
an in-process client (httpx over ASGI, with the app's lifespan) and a live uvicorn server.

The tiny Qwen2.5-Omni preset has random weights, so it would answer with noise; ~100 optimiser steps
teach it one well-formed completion (visual and audio clauses, label "angry") so that the tests and
the browser can check a real answer. It is saved once per session and served from the saved folder.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import torch
from serve_fakes import TAUGHT_COMPLETION, TEACH_STEPS, StubPolicy, frames, tone

from r1omni.clips import ClipLoader
from r1omni.inference import sample_for_path
from r1omni.media import write_audio, write_clip
from r1omni.models import SamplingConfig, init_preset, load_policy
from r1omni.serve import ServeConfig, create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Generated clips: clip.mp4 (1 s, video + audio), voice.wav (1 s), long.wav (3 s), corrupt.mp4 (not
    media), cut.mkv (probes fine, but its packets stop half-way: decoding fails)."""
    folder = tmp_path_factory.mktemp("serve_media")
    write_clip(folder / "clip.mp4", frames(24, 0), 24, tone(1.0))
    full = write_clip(folder / "full.mkv", frames(48, 1), 24, tone(2.0)).read_bytes()
    (folder / "cut.mkv").write_bytes(full[: len(full) // 2])
    write_audio(folder / "voice.wav", tone(1.0, 330.0))
    write_audio(folder / "long.wav", tone(3.0))
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, media_dir) -> Path:
    """The tiny preset taught TAUGHT_COMPLETION on a video clip and an audio clip, saved."""
    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    loader = ClipLoader(num_frames=policy.num_frames)
    clips = [loader.load(sample_for_path(media_dir / name)) for name in ("clip.mp4", "voice.wav")]
    batch = policy.prepare(clips)
    ids, mask = policy.encode_completions([TAUGHT_COMPLETION] * len(clips))             # (2, C)
    optimizer = torch.optim.Adam(policy.module.parameters(), lr=3e-3)
    policy.module.train()
    for _ in range(TEACH_STEPS):
        logprobs = policy.token_logprobs(batch, ids, torch.arange(len(clips)))          # (2, C)
        loss = -(logprobs * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.module.eval()
    texts = policy.generate(batch, sampling=SamplingConfig(max_new_tokens=64)).texts
    assert texts == [TAUGHT_COMPLETION] * 2, f"the tiny model did not learn its answer (loss {loss.item():.3f}): {texts}"
    directory = tmp_path_factory.mktemp("served") / "tiny-angry"
    policy.save(directory)
    return directory


@pytest.fixture(scope="session")
def policy(model_dir):
    return load_policy(model_dir)


@pytest.fixture
def stub_factory():
    """Build stub models; every one is released at teardown so its worker thread can stop."""
    made: list[StubPolicy] = []

    def make(**kwargs) -> StubPolicy:
        made.append(StubPolicy(**kwargs))
        return made[-1]

    yield make
    for stub in made:
        stub.release.set()


@pytest.fixture
def upload_dir(tmp_path) -> Path:
    """Where the app under test writes uploads; it must be empty again after every test."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    yield folder
    left = sorted(p.name for p in folder.iterdir())
    assert not left, f"temporary uploads were not removed: {left}"


@pytest.fixture
def serve(upload_dir):
    """``async with serve(policy, **config) as (client, app)``: the app with its worker running,
    reached in-process through httpx's ASGI transport."""

    @asynccontextmanager
    async def start(policy, raise_app_exceptions: bool = True, **fields):
        fields.setdefault("label_set", "synth")
        fields.setdefault("max_new_tokens", 64)
        app = create_app(policy, ServeConfig(upload_dir=str(upload_dir), **fields))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", timeout=60) as client:
                yield client, app

    return start


@pytest.fixture
def live_server():
    """``with live_server(app) as base_url``: uvicorn serving ``app`` on a free loopback port, in a thread."""
    import uvicorn

    @contextmanager
    def start(app):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()

    return start
