"""The HTTP API: answers for uploads and server paths, limits, path safety, batching, queue and timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import doctest
import os
from pathlib import Path

import httpx
import pytest
from serve_fakes import TAUGHT_THINK

import r1omni.explain.reasoning
import r1omni.serve.schemas
from r1omni.serve import ServeConfig, create_app
from r1omni.serve.inputs import FORM_ALLOWANCE_BYTES

pytestmark = pytest.mark.anyio


def upload(path: Path, name: str | None = None) -> dict:
    return {"file": (name or path.name, path.read_bytes())}


# -- answers ---------------------------------------------------------------------------------------------------
async def test_upload_video_with_audio(serve, policy, media_dir):
    async with serve(policy) as (client, app):
        response = await client.post("/v1/predict", files=upload(media_dir / "clip.mp4"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-request-id"] == body["id"]
    assert (body["label"], body["answer"], body["think"], body["format_ok"]) == ("angry", "angry", TAUGHT_THINK, True)
    assert body["media"] == {"duration_seconds": pytest.approx(1.0, abs=0.1), "has_video": True, "has_audio": True,
                             "size_bytes": (media_dir / "clip.mp4").stat().st_size}
    # The reasoning comes back cut into clauses tagged with the evidence they cite.
    assert "".join(s["text"] for s in body["reasoning"]) == TAUGHT_THINK
    assert [(s["visual"], s["audio"]) for s in body["reasoning"]] == [(True, False), (False, True)]
    # Each clause's cue claims, checked against the cues measured on the clip (the voice is measured).
    brows, loud = (claim for segment in body["reasoning"] for claim in segment["claims"])
    assert (brows["cue"], brows["claimed"], brows["measured"], brows["verdict"]) == (
        "brow_raise", "lowered", None, "not checkable")
    assert (loud["cue"], loud["claimed"]) == ("loudness", "loud") and loud["measured"] in ("soft", "moderate", "loud")
    assert loud["verdict"] == ("supported" if loud["measured"] == "loud" else "contradicted")
    timings = body["timings"]
    assert timings["generate_seconds"] > 0 and timings["decode_seconds"] > 0
    assert timings["total_seconds"] >= timings["generate_seconds"]
    assert body["attribution"] is None and body["batch_size"] == 1


async def test_upload_audio_only_wav(serve, policy, media_dir):
    async with serve(policy) as (client, app):
        response = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "angry" and body["format_ok"]
    assert (body["media"]["has_video"], body["media"]["has_audio"]) == (False, True)


async def test_label_outside_the_label_set_is_none(serve, stub_factory, media_dir):
    stub = stub_factory(text="<think>The voice is calm.</think><answer>calm</answer>")
    async with serve(stub, label_set="dfew") as (client, app):
        body = (await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))).json()
    assert (body["answer"], body["label"], body["format_ok"]) == ("calm", None, True)


async def test_explain_adds_modality_attribution(serve, policy, media_dir):
    async with serve(policy) as (client, app):
        video = await client.post("/v1/predict?explain=true", files=upload(media_dir / "clip.mp4"))
        # as a form field too, on an audio file: there is no video to remove
        audio = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"), data={"explain": "true"})
    assert video.status_code == 200 and audio.status_code == 200
    body = video.json()
    assert body["label"] == "angry" and body["timings"]["attribution_seconds"] > 0
    attribution = body["attribution"]
    assert attribution["method"] == "blank"
    assert attribution["decisive"] in ("video", "audio", "both", "neither")
    effects = {m["modality"]: m for m in attribution["modalities"]}
    assert set(effects) == {"video", "audio", "both"} and all(m["present"] for m in effects.values())
    assert all(isinstance(m["answer_contribution"], float) for m in effects.values())
    audio_effects = {m["modality"]: m for m in audio.json()["attribution"]["modalities"]}
    assert not audio_effects["video"]["present"] and audio_effects["audio"]["present"]
    assert audio_effects["video"]["answer_contribution"] == 0.0  # blanking absent frames changes nothing


async def test_model_health_and_openapi(serve, policy, model_dir):
    async with serve(policy, model_name="tiny-angry") as (client, app):
        model = (await client.get("/v1/model")).json()
        health = await client.get("/healthz")
        openapi = (await client.get("/openapi.json")).json()
        page = await client.get("/")
        script = await client.get("/static/app.js")
    assert (model["name"], model["family"], model["label_set"]) == ("tiny-angry", "qwen2_5_omni", "synth")
    assert model["labels"] == ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
    assert "brows" in model["reasoning_words"]["visual"] and "pitch" in model["reasoning_words"]["audio"]
    assert model["limits"]["max_upload_bytes"] == ServeConfig().max_upload_bytes
    assert health.status_code == 200 and health.json()["status"] == "ok"
    body = openapi["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert {"413", "422", "503", "504"} <= set(openapi["paths"]["/v1/predict"]["post"]["responses"])
    assert {"/healthz", "/v1/model"} <= set(openapi["paths"])
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="file-input"' in page.text and script.status_code == 200


async def test_create_app_from_a_model_folder(model_dir, upload_dir, media_dir):
    app = create_app(str(model_dir), ServeConfig(label_set="synth", upload_dir=str(upload_dir), max_new_tokens=64))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/v1/model")).json()["name"] == "tiny-angry"
            response = await client.post("/v1/predict", files=upload(media_dir / "clip.mp4"))
    assert response.json()["label"] == "angry"


def test_schema_and_segments_doctests():
    """The clause cutting moved to r1omni.explain.reasoning (segments); the schemas map its dataclasses."""
    for module in (r1omni.serve.schemas, r1omni.explain.reasoning):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# -- bad input ---------------------------------------------------------------------------------------------------
async def test_corrupt_file_is_422_naming_the_problem(serve, policy, media_dir):
    async with serve(policy) as (client, app):
        response = await client.post("/v1/predict", files=upload(media_dir / "corrupt.mp4", "holiday.mp4"))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "unreadable_media"
    assert body["message"].startswith("holiday.mp4: ") and "media" in body["message"]
    assert str(media_dir) not in body["message"] and "r1omni-" not in body["message"]  # no server paths


@pytest.mark.parametrize("request_kwargs, status, error", [
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    ({"files": {"other": ("a.wav", b"x")}}, 400, "bad_multipart"),
    ({"data": {"explain": "true"}, "files": {"file": ("empty.wav", b"")}}, 422, "unreadable_media"),
    ({"files": {"file": ("a.wav", b"x")}, "data": {"explain": "maybe"}}, 422, "invalid_request"),
    ({"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}}, 400, "bad_multipart"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_request"),
    ({"json": {"file": "clip.mp4"}}, 422, "invalid_request"),
])
async def test_malformed_requests(serve, policy, request_kwargs, status, error):
    async with serve(policy) as (client, app):
        response = await client.post("/v1/predict", **request_kwargs)
    assert (response.status_code, response.json()["error"]) == (status, error), response.text


async def test_form_without_a_file(serve, policy):
    async with serve(policy) as (client, app):
        urlencoded = await client.post("/v1/predict", data={"explain": "false"})
        no_file = await client.post("/v1/predict", content=b'--b\r\nContent-Disposition: form-data; name="explain"'
                                    b"\r\n\r\ntrue\r\n--b--\r\n",
                                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert (urlencoded.status_code, urlencoded.json()["error"]) == (415, "unsupported_media_type")
    assert (no_file.status_code, no_file.json()["error"]) == (422, "missing_file")


# -- limits ------------------------------------------------------------------------------------------------------
def _multipart_chunks(total_bytes: int, chunk_bytes: int, pulled: list[int]):
    """An async multipart body with one file of ``total_bytes``; ``pulled`` counts what the server read."""
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    tail = b"\r\n--b--\r\n"

    async def chunks():
        for piece in [head] + [b"\0" * chunk_bytes] * (total_bytes // chunk_bytes) + [tail]:
            pulled.append(len(piece))
            yield piece

    return chunks(), len(head) + total_bytes // chunk_bytes * chunk_bytes + len(tail)


async def test_oversized_upload_refused_from_content_length_unread(serve, policy):
    pulled: list[int] = []
    body, length = _multipart_chunks(50 * 1024 * 1024, 1024 * 1024, pulled)
    async with serve(policy, max_upload_bytes=100_000) as (client, app):
        response = await client.post("/v1/predict", content=body, headers={
            "content-type": "multipart/form-data; boundary=b", "content-length": str(length)})
    assert response.status_code == 413 and response.json()["error"] == "upload_too_large"
    assert "100000 bytes" in response.json()["message"]
    assert sum(pulled) == 0  # refused before reading a byte of the body


async def test_oversized_streamed_upload_aborted_at_the_limit(serve, policy, upload_dir):
    pulled: list[int] = []
    body, _ = _multipart_chunks(50 * 1024 * 1024, 64 * 1024, pulled)  # chunked: no Content-Length
    async with serve(policy, max_upload_bytes=200_000) as (client, app):
        response = await client.post("/v1/predict", content=body,
                                     headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and response.json()["error"] == "upload_too_large"
    assert sum(pulled) <= 200_000 + FORM_ALLOWANCE_BYTES + 64 * 1024  # stopped at the limit, not 50 MiB
    assert not list(upload_dir.iterdir())  # the partial file is gone


async def test_small_upload_limit_passes_a_file_under_it(serve, policy, media_dir):
    size = (media_dir / "voice.wav").stat().st_size
    async with serve(policy, max_upload_bytes=size) as (client, app):
        ok = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    async with serve(policy, max_upload_bytes=size - 1) as (client, app):
        too_big = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    assert (ok.status_code, too_big.status_code) == (200, 413)


async def test_clip_longer_than_the_limit_is_413(serve, policy, media_dir):
    async with serve(policy, max_duration_seconds=2.0) as (client, app):
        long = await client.post("/v1/predict", files=upload(media_dir / "long.wav"))
        short = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    assert long.status_code == 413 and long.json()["error"] == "clip_too_long"
    assert "3.0 s" in long.json()["message"] and short.status_code == 200


# -- server paths ------------------------------------------------------------------------------------------------
@pytest.fixture
def media_root(tmp_path, media_dir) -> Path:
    """root/clip.mp4, root/sub/voice.wav, root/escape.mp4 -> a clip outside the root, and
    outside/secret.mp4 beside the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "clip.mp4").write_bytes((media_dir / "clip.mp4").read_bytes())
    (root / "sub" / "voice.wav").write_bytes((media_dir / "voice.wav").read_bytes())
    (outside / "secret.mp4").write_bytes((media_dir / "clip.mp4").read_bytes())
    os.symlink(outside / "secret.mp4", root / "escape.mp4")
    os.symlink(outside, root / "door")
    os.mkfifo(root / "pipe.mp4")
    return root


async def test_path_inside_the_media_root(serve, policy, media_root):
    async with serve(policy, media_root=str(media_root)) as (client, app):
        relative = await client.post("/v1/predict", json={"path": "sub/voice.wav"})
        absolute = await client.post("/v1/predict", json={"path": str(media_root / "clip.mp4"), "explain": False})
        dotted = await client.post("/v1/predict", json={"path": "sub/../clip.mp4"})
    for response in (relative, absolute, dotted):
        assert response.status_code == 200, response.text
        assert response.json()["label"] == "angry"
    assert relative.json()["media"]["has_video"] is False


@pytest.mark.parametrize("requested, status", [
    ("../outside/secret.mp4", 403),
    ("sub/../../outside/secret.mp4", 403),
    ("escape.mp4", 403),                 # a symlink to a file outside
    ("door/secret.mp4", 403),            # through a symlinked folder
    ("/etc/passwd", 403),
    ("{outside}/secret.mp4", 403),       # absolute, outside
    ("missing.mp4", 404),
    ("", 422),
    ("pipe.mp4", 422),                   # a FIFO would block the decoder
])
async def test_paths_outside_the_root_are_refused(serve, policy, media_root, requested, status):
    requested = requested.format(outside=media_root.parent / "outside")
    async with serve(policy, media_root=str(media_root)) as (client, app):
        response = await client.post("/v1/predict", json={"path": requested})
    assert response.status_code == status, response.text
    if requested == "escape.mp4":
        assert str(media_root.parent / "outside") not in response.json()["message"]  # the link target stays hidden


async def test_paths_refused_without_a_media_root(serve, policy, media_dir):
    async with serve(policy) as (client, app):
        response = await client.post("/v1/predict", json={"path": str(media_dir / "clip.mp4")})
    assert (response.status_code, response.json()["error"]) == (403, "paths_disabled")


# -- concurrency, queue, timeout -----------------------------------------------------------------------------
def test_concurrent_requests_are_all_answered_and_batched(policy, media_dir, upload_dir, live_server):
    config = ServeConfig(label_set="synth", max_new_tokens=64, upload_dir=str(upload_dir), max_batch_size=8,
                         batch_window_seconds=0.5)
    app = create_app(policy, config)
    clip = (media_dir / "clip.mp4").read_bytes()

    with live_server(app) as base_url:
        def one(index: int) -> httpx.Response:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                return client.post("/v1/predict", files={"file": (f"clip{index}.mp4", clip)})

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(one, range(8)))
        health = httpx.get(f"{base_url}/healthz").json()
    assert [r.status_code for r in responses] == [200] * 8
    assert {r.json()["label"] for r in responses} == {"angry"}
    assert len({r.json()["id"] for r in responses}) == 8
    sizes = list(app.state.worker.batch_sizes)
    assert sum(sizes) == 8 and max(sizes) > 1, sizes  # fewer generate calls than requests
    assert max(r.json()["batch_size"] for r in responses) == max(sizes)
    assert health["clips_answered"] == 8 and health["batches_run"] == len(sizes)


async def test_full_queue_answers_503(serve, stub_factory, media_dir):
    stub = stub_factory(hold=True)
    files = upload(media_dir / "voice.wav")
    async with serve(stub, max_queue=1, max_batch_size=2, batch_window_seconds=0) as (client, app):
        running = asyncio.create_task(client.post("/v1/predict", files=files))
        await asyncio.to_thread(stub.started.wait, 10)           # the first clip is in the model
        waiting = asyncio.create_task(client.post("/v1/predict", files=files))
        while app.state.worker.queued < 1:                         # the second fills the queue
            await asyncio.sleep(0.01)
        refused = await client.post("/v1/predict", files=files)
        stub.release.set()
        first, second = await running, await waiting
    assert refused.status_code == 503 and refused.json()["error"] == "queue_full"
    assert refused.headers["retry-after"] == "1" and "clips waiting" in refused.json()["message"]
    assert (first.status_code, second.status_code) == (200, 200)
    assert stub.batch_sizes == [1, 1]


async def test_stalled_uploads_hold_no_place_and_lock_no_one_out(serve, stub_factory, media_dir, upload_dir):
    """D6: requests were counted in flight before their body arrived, so as many stalled uploads as places
    (max_queue + max_batch_size) made every other client get 503 for as long as they stayed open."""
    gate = asyncio.Event()

    async def stalled_upload():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n\r\n'
        await gate.wait()
        yield b"\r\n--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    async with serve(stub_factory(), max_queue=1, max_batch_size=1) as (client, app):
        slow = [asyncio.create_task(client.post("/v1/predict", content=stalled_upload(), headers=headers))
                for _ in range(2)]
        while len(list(upload_dir.iterdir())) < 2:
            await asyncio.sleep(0.01)
        served = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
        gate.set()
        finished = await asyncio.gather(*slow)
    assert served.status_code == 200, served.json()
    assert [r.json()["error"] for r in finished] == ["unreadable_media"] * 2  # empty files


async def test_a_body_that_stops_arriving_is_dropped_with_408(serve, stub_factory, upload_dir):
    """D6: nothing timed out a body that stopped arriving; its partial upload stayed on disk meanwhile."""
    gate = asyncio.Event()

    async def stalled_upload():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n\r\nRIFF'
        await gate.wait()

    headers = {"content-type": "multipart/form-data; boundary=b"}
    async with serve(stub_factory(), upload_idle_timeout_seconds=0.3) as (client, app):
        response = await client.post("/v1/predict", content=stalled_upload(), headers=headers)
        gate.set()
    assert response.status_code == 408 and response.json()["error"] == "upload_timeout"
    assert "nothing for 0.3 s" in response.json()["message"] and not list(upload_dir.iterdir())


async def test_timeout_answers_504_and_removes_the_upload(serve, stub_factory, media_dir, upload_dir):
    stub = stub_factory(hold=True)
    async with serve(stub, request_timeout_seconds=0.3) as (client, app):
        response = await client.post("/v1/predict", files=upload(media_dir / "clip.mp4"))
        assert not list(upload_dir.iterdir())
        stub.release.set()
    assert response.status_code == 504 and response.json()["error"] == "timeout"


async def test_a_failing_model_answers_500_and_the_worker_goes_on(serve, stub_factory, media_dir):
    stub = stub_factory(fail=True)
    async with serve(stub, raise_app_exceptions=False) as (client, app):
        failed = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
        stub.fail = False
        recovered = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    assert failed.status_code == 500 and failed.json() == {"error": "internal_error",
                                                           "message": "the server failed (RuntimeError)"}
    assert recovered.status_code == 200


async def test_decode_failure_in_the_worker_spares_the_rest_of_its_batch(serve, stub_factory, media_dir):
    """cut.mkv passes the header check but fails to decode: a 422 for it, answers for its batch mates."""
    stub = stub_factory(hold=True)
    async with serve(stub, max_batch_size=4, batch_window_seconds=0.3) as (client, app):
        requests = [client.post("/v1/predict", files=upload(media_dir / name))
                    for name in ("clip.mp4", "cut.mkv", "voice.wav")]
        stub.release.set()
        good, cut, audio = await asyncio.gather(*requests)
    assert (good.status_code, audio.status_code) == (200, 200)
    assert cut.status_code == 422 and cut.json()["message"].startswith("cut.mkv: truncated")
    assert stub.batch_sizes == [2] and list(app.state.worker.batch_sizes) == [3]


async def test_shutdown_fails_waiting_requests_with_503(stub_factory, media_dir, upload_dir):
    stub = stub_factory(hold=True)
    app = create_app(stub, ServeConfig(upload_dir=str(upload_dir), max_batch_size=1, batch_window_seconds=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        async with app.router.lifespan_context(app):
            running = asyncio.create_task(client.post("/v1/predict", files=upload(media_dir / "voice.wav")))
            await asyncio.to_thread(stub.started.wait, 10)
            waiting = asyncio.create_task(client.post("/v1/predict", files=upload(media_dir / "voice.wav")))
            while app.state.worker.queued < 1:
                await asyncio.sleep(0.01)
            # Let the running batch finish only once shutdown has begun: the waiting one is refused.
            asyncio.get_running_loop().call_later(0.3, stub.release.set)
        first, second = await running, await waiting
        after = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]) == (503, "shutting_down")
    assert (after.status_code, after.json()["error"]) == (503, "unavailable")
