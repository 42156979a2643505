"""The server's cases from the reliability battery: malformed multipart headers, a full upload folder,
clients that leave, the timeline's limits and fairness, a recording cut short, the OpenAPI document."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging

import pytest
from serve_fakes import StubPolicy, tone

import r1omni.serve.inputs
from r1omni.media import write_audio
from r1omni.serve import ServeConfig, create_app

pytestmark = pytest.mark.anyio


def upload(path, name=None) -> dict:
    return {"file": (name or path.name, path.read_bytes())}


def _lines(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


async def test_a_boundary_over_the_parsers_limit_is_a_400(serve, stub_factory):
    """D14: python-multipart refuses boundaries over 256 characters in its constructor: 500 and a traceback."""
    async with serve(stub_factory()) as (client, app):
        response = await client.post("/v1/predict", content=b"x",
                                     headers={"content-type": f"multipart/form-data; boundary={'b' * 5000}"})
    assert response.status_code == 400 and response.json()["error"] == "bad_multipart"
    assert "Boundary length 5000 exceeds maximum of 256" in response.json()["message"]


async def test_a_full_upload_folder_says_no_space_left(serve, stub_factory, media_dir, upload_dir, monkeypatch):
    """D15: the reply was "500 the server failed (OSError)"."""
    real_fdopen = r1omni.serve.inputs.os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.handle.close()

    monkeypatch.setattr(r1omni.serve.inputs.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    async with serve(stub_factory()) as (client, app):
        response = await client.post("/v1/predict", files=upload(media_dir / "voice.wav"))
    assert response.status_code == 507 and response.json()["error"] == "insufficient_storage"
    assert response.json()["message"].startswith("no space left on the server to store the upload")
    assert not list(upload_dir.iterdir())


async def test_a_client_that_leaves_mid_upload_is_let_go_without_a_traceback(stub_factory, upload_dir):
    """D19: every client that disconnected mid-upload left "Exception in ASGI application ... ClientDisconnect"
    and a traceback in the log (the exception escaped the app)."""
    app = create_app(stub_factory(), ServeConfig(upload_dir=str(upload_dir)))
    messages = [{"type": "http.request", "body": b'--b\r\nContent-Disposition: form-data; name="file"; '
                                                 b'filename="a.wav"\r\n\r\nRIFF', "more_body": True},
                {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"host", b"t")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)    # raised ClientDisconnect before
    assert sent[0]["status"] == 400 and not list(upload_dir.iterdir())


async def test_timeline_windows_are_finite_and_capped(serve, stub_factory, media_dir):
    """D17: segment_seconds=inf was answered with "window_seconds": Infinity. D7: no cap on windows."""
    async with serve(stub_factory(), max_timeline_windows=10) as (client, app):
        infinite = await client.post("/v1/timeline?segment_seconds=inf", files=upload(media_dir / "long.wav"))
        many = await client.post("/v1/timeline?segment_seconds=1&overlap_seconds=0.9",
                                 files=upload(media_dir / "long.wav"))
        fine = await client.post("/v1/timeline?segment_seconds=1", files=upload(media_dir / "long.wav"))
        model = (await client.get("/v1/model")).json()
    assert infinite.status_code == 422 and "window_seconds must be a finite number" in infinite.json()["message"]
    assert many.status_code == 413 and many.json()["error"] == "too_many_windows"
    assert many.json()["message"].startswith("long.wav: the recording would be cut into 2")
    assert fine.status_code == 200 and _lines(fine)[-1]["summary"]["windows"] == 3
    assert model["limits"]["max_timeline_windows"] == 10


class RecordingStub(StubPolicy):
    """Records, in order, the audio length of every clip the model is given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[int] = []

    def prepare(self, clips):
        self.seen.extend(len(clip.waveform) for clip in clips)
        return super().prepare(clips)


async def test_a_clip_is_answered_between_a_timelines_window_batches(serve, media_dir, tmp_path):
    """D7: the worker ran a recording alone, so /v1/predict waited for the whole timeline."""
    stub = RecordingStub(hold=True)
    recording = write_audio(tmp_path / "long.wav", tone(4.0))
    try:
        async with serve(stub, max_batch_size=1) as (client, app):
            timeline = asyncio.create_task(client.post("/v1/timeline?segment_seconds=0.5", files=upload(recording)))
            await asyncio.to_thread(stub.started.wait, 10)           # the first window is in the model
            clip = asyncio.create_task(client.post("/v1/predict", files=upload(media_dir / "voice.wav")))
            while app.state.worker.queued < 1:
                await asyncio.sleep(0.01)
            stub.release.set()
            answered, streamed = await clip, await timeline
    finally:
        stub.release.set()
    assert answered.status_code == 200 and _lines(streamed)[-1]["type"] == "summary"
    assert stub.seen.count(8000) == 8 and stub.seen.index(16000) < len(stub.seen) - 1, stub.seen
    assert stub.seen.index(16000) <= 2   # after the window batch that was running, not after all eight


async def test_a_recording_cut_short_ends_its_stream_with_the_error(serve, stub_factory, media_dir):
    """D10: timeline mode answered every window of a half-cut file, the later ones from what was left."""
    async with serve(stub_factory()) as (client, app):
        response = await client.post("/v1/timeline?segment_seconds=0.5", files=upload(media_dir / "cut.mkv"))
    last = _lines(response)[-1]
    assert (last["type"], last["error"]) == ("error", "timeline_failed")
    assert last["message"].startswith("cut.mkv: truncated: the container declares")


async def test_a_timeline_whose_client_left_leaves_no_unretrieved_exception(tmp_path, caplog):
    """D19: a cancelled timeline logged "Future exception was never retrieved ... TimelineCancelled": the
    worker ends the job with that exception after its stream, the only reader, is gone."""
    from r1omni.media import MediaInfo
    from r1omni.schema import Sample
    from r1omni.serve.app import stream_timeline
    from r1omni.serve.inputs import ClipRequest
    from r1omni.serve.worker import Job, TimelineCancelled
    from r1omni.timeline import TimelineOptions

    job = Job(Sample(id="x", corpus="serve", audio=str(tmp_path / "a.wav")), timeline=TimelineOptions())
    clip = ClipRequest(id="x", path=tmp_path / "a.wav", name="a.wav", temporary=False)
    info = MediaInfo(4.0, None, None, None, None, False, True, 16000)
    lines = stream_timeline(None, job, clip, info)
    assert json.loads(await lines.__anext__())["type"] == "start"
    job.future.set_running_or_notify_cancel()     # the worker has started the job
    await lines.aclose()                          # the client went away
    job.future.set_exception(TimelineCancelled("cancelled after 1 of 8 windows"))
    await asyncio.sleep(0.05)                     # the outcome reaches the event loop's future
    del job, lines
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_every_openapi_ref_resolves_and_paths_must_not_be_blank(serve, stub_factory):
    """D20: /v1/timeline's 200 schema referred to #/$defs/Claim from the document root; PathRequest.path
    allowed "" although the server refuses it (schemathesis ST202)."""
    async with serve(stub_factory()) as (client, app):
        document = (await client.get("/openapi.json")).json()
        blank = await client.post("/v1/predict", json={"path": "  "})
    refs = set()

    def collect(node):
        if isinstance(node, dict):
            refs.update(value for key, value in node.items() if key == "$ref")
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert refs and all(ref.startswith("#/components/schemas/") for ref in refs), refs
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(document["components"]["schemas"])
    path_schema = document["components"]["schemas"]["PathRequest"]["properties"]["path"]
    assert path_schema["minLength"] == 1 and "pattern" in path_schema
    assert blank.status_code == 422


async def test_the_form_takes_only_its_documented_fields_each_checked(serve, stub_factory, media_dir):
    """Schemathesis (ST201): a form field transcribe={} was accepted when the query already said true, and
    fields the document does not list were ignored; the form is now as strict as the JSON body."""
    clip = (media_dir / "voice.wav").read_bytes()
    async with serve(stub_factory()) as (client, app):
        bad_flag = await client.post("/v1/predict?transcribe=true", files={"file": ("v.wav", clip)},
                                     data={"transcribe": "{}"})
        unknown = await client.post("/v1/predict", files={"file": ("v.wav", clip)}, data={"colour": "red"})
        fine = await client.post("/v1/predict", files={"file": ("v.wav", clip)}, data={"face_crop": "false"})
    assert (bad_flag.status_code, bad_flag.json()["error"]) == (422, "invalid_request")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "bad_multipart")
    assert "unknown form field 'colour'" in unknown.json()["message"] and fine.status_code == 200
