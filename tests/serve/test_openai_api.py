"""The OpenAI-compatible endpoint driven by the real ``openai`` client over HTTP: a clip as a ``data:`` URL,
a path, a ``file://`` URL and ``input_audio``, answered as ``/v1/predict`` answers it; streaming; errors in
OpenAI's shape; nothing fetched from the network; ``/docs`` and ``/redoc`` served from this server."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from serve_fakes import TAUGHT_COMPLETION

from r1omni.serve import ServeConfig, create_app
from r1omni.serve.chat import _pieces

openai = pytest.importorskip("openai")


def _data_url(path, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _ask(part: dict, text: str = "What emotion does the person show?") -> list[dict]:
    return [{"role": "system", "content": "You are an emotion recognition model."},
            {"role": "user", "content": [{"type": "text", "text": text}, part]}]


@pytest.fixture
def served(live_server, upload_dir, media_dir):
    """``with served(policy, **config) as (client, base_url)``: a live server and an ``openai`` client on it."""
    from contextlib import contextmanager

    @contextmanager
    def start(policy, **fields):
        fields = {"label_set": "synth", "max_new_tokens": 64, "upload_dir": str(upload_dir), **fields}
        with live_server(create_app(policy, ServeConfig(**fields))) as base_url:
            yield openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120), base_url

    return start


def test_the_openai_client_gets_the_answer_of_v1_predict(served, policy, media_dir):
    clip, voice = media_dir / "clip.mp4", media_dir / "voice.wav"
    with served(policy, media_root=str(media_dir), model_name="tiny-angry") as (client, base_url):
        [model] = client.models.list().data
        assert model.id == "tiny-angry" and client.models.retrieve("tiny-angry").id == model.id
        by_predict = {path.name: httpx.post(f"{base_url}/v1/predict", files={"file": (path.name, path.read_bytes())},
                                            timeout=120).json() for path in (clip, voice)}
        parts = {
            "data: URL": ({"type": "video_url", "video_url": {"url": _data_url(clip, "video/mp4")}}, clip),
            "path": ({"type": "video_url", "video_url": {"url": "clip.mp4"}}, clip),
            "file:// URL": ({"type": "video_url", "video_url": {"url": clip.resolve().as_uri()}}, clip),
            "audio_url": ({"type": "audio_url", "audio_url": {"url": _data_url(voice, "audio/wav")}}, voice),
            "input_audio": ({"type": "input_audio", "input_audio": {
                "data": base64.b64encode(voice.read_bytes()).decode(), "format": "wav"}}, voice),
            "ms-swift's audio": ({"type": "audio", "audio": "voice.wav"}, voice),
        }
        for how, (part, path) in parts.items():
            completion = client.chat.completions.create(model=model.id, messages=_ask(part))
            expected = by_predict[path.name]
            text = completion.choices[0].message.content
            assert text == expected["output"] == TAUGHT_COMPLETION, how
            assert re.fullmatch(r"<think>.+</think>\s*<answer>.+</answer>", text, re.DOTALL), how
            assert completion.choices[0].finish_reason == "stop" and completion.object == "chat.completion"
            extra = completion.model_extra["r1omni"]
            assert extra["label"] == expected["label"] and extra["label"] is not None, how
            assert extra["answer"] == expected["answer"] and extra["think"] == expected["think"], how
            assert extra["reasoning"] == expected["reasoning"], how     # the claims' verdicts, clause by clause
            assert extra["media"]["has_video"] == (path.suffix == ".mp4"), how


def test_a_streamed_completion_joins_to_the_same_text(served, policy, media_dir):
    clip = media_dir / "clip.mp4"
    part = {"type": "video_url", "video_url": {"url": _data_url(clip, "video/mp4")}}
    with served(policy, model_name="tiny-angry") as (client, _):
        whole = client.chat.completions.create(model="tiny-angry", messages=_ask(part))
        chunks = list(client.chat.completions.create(model="tiny-angry", messages=_ask(part), stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 3 and "".join(pieces) == whole.choices[0].message.content
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.object == "chat.completion.chunk" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert last.model_extra["r1omni"]["label"] == whole.model_extra["r1omni"]["label"]


def test_a_remote_url_is_refused_and_never_fetched(served, stub_factory, media_dir):
    with served(stub_factory()) as (client, _):
        for url in ("https://example.com/clip.mp4", "http://127.0.0.1:9/clip.mp4"):
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="stub", messages=_ask(
                    {"type": "video_url", "video_url": {"url": url}}))
            error = refused.value.body
            assert refused.value.status_code == 400 and error["code"] == "remote_url_refused"
            assert error["param"] == "messages[1].content[1].video_url.url" and error["param"] in error["message"]
            assert error["type"] == "invalid_request_error"


def test_bad_requests_get_openai_errors_naming_the_part(served, stub_factory, media_dir):
    clip = _data_url(media_dir / "clip.mp4", "video/mp4")
    video = {"type": "video_url", "video_url": {"url": clip}}
    with served(stub_factory()) as (client, base_url):
        cases = {
            "wrong model": (openai.NotFoundError, "model_not_found", dict(model="gpt-4o", messages=_ask(video))),
            "two clips": (openai.BadRequestError, "one_clip_per_request", dict(model="stub", messages=[
                {"role": "user", "content": [video, {"type": "audio_url", "audio_url": {"url": clip}}]}])),
            "no clip": (openai.BadRequestError, "one_clip_per_request", dict(model="stub", messages=[
                {"role": "user", "content": "How does this person feel?"}])),
            "an image": (openai.BadRequestError, "unsupported_content", dict(model="stub", messages=_ask(
                {"type": "image_url", "image_url": {"url": clip}}))),
            "bad base64": (openai.BadRequestError, "invalid_base64", dict(model="stub", messages=_ask(
                {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,@@@"}}))),
            "a path without a media root": (openai.PermissionDeniedError, "paths_disabled", dict(
                model="stub", messages=_ask({"type": "video_url", "video_url": {"url": "clip.mp4"}}))),
            "not media": (openai.UnprocessableEntityError, "unreadable_media", dict(model="stub", messages=_ask(
                {"type": "video_url", "video_url": {"url": _data_url(media_dir / "corrupt.mp4", "video/mp4")}}))),
            "two answers": (openai.BadRequestError, "invalid_request", dict(model="stub", messages=_ask(video), n=2)),
        }
        for case, (error_type, code, request) in cases.items():
            with pytest.raises(error_type) as failed:
                client.chat.completions.create(**request)
            assert failed.value.body["code"] == code, (case, failed.value.body)
            assert failed.value.body["message"], case
        # The unreadable clip is named by its part, never by the server's temporary file.
        assert "messages[1].content[1].video_url.url" in failed_message(client, media_dir)
        # r1omni's own routes keep their shape.
        own = httpx.post(f"{base_url}/v1/predict", json={"path": "clip.mp4"})
    assert own.status_code == 403 and own.json()["error"] == "paths_disabled"


def failed_message(client, media_dir) -> str:
    with pytest.raises(openai.UnprocessableEntityError) as failed:
        client.chat.completions.create(model="stub", messages=_ask(
            {"type": "video_url", "video_url": {"url": _data_url(media_dir / "corrupt.mp4", "video/mp4")}}))
    return failed.value.body["message"]


def test_a_model_failure_midstream_is_an_error_event(served, stub_factory, media_dir):
    part = {"type": "video_url", "video_url": {"url": _data_url(media_dir / "clip.mp4", "video/mp4")}}
    with served(stub_factory(fail=True)) as (client, _):
        stream = client.chat.completions.create(model="stub", messages=_ask(part), stream=True)
        with pytest.raises(openai.APIError, match="RuntimeError"):
            list(stream)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="stub", messages=_ask(part))


def test_r1omni_options_ride_in_extra_body(served, stub_factory, media_dir):
    part = {"type": "video_url", "video_url": {"url": _data_url(media_dir / "clip.mp4", "video/mp4")}}
    with served(stub_factory()) as (client, _):
        plain = client.chat.completions.create(model="stub", messages=_ask(part))
        cropped = client.chat.completions.create(model="stub", messages=_ask(part), extra_body={"face_crop": True},
                                                 temperature=0.7, max_tokens=5)
    assert plain.model_extra["r1omni"]["face_crop"] is None
    assert cropped.model_extra["r1omni"]["face_crop"]["face_found"] is False   # moving bars, no face
    assert cropped.choices[0].message.content == plain.choices[0].message.content  # decoding is the server's


def test_docs_pages_load_only_from_this_server(served, stub_factory):
    with served(stub_factory()) as (_, base_url):
        pages = {name: httpx.get(f"{base_url}/{name}") for name in ("docs", "redoc")}
        for name, page in pages.items():
            assert page.status_code == 200, name
            sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
            assert sources and all(src.startswith("/") and not src.startswith("//") for src in sources), sources
            assert not re.search(r"https?://", page.text), name
            for src in sources:
                asset = httpx.get(f"{base_url}{src}")
                assert asset.status_code == 200 and "cdn.redoc.ly" not in asset.text, src   # ReDoc's logo link
        document = httpx.get(f"{base_url}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models"} <= set(document["paths"])


@pytest.mark.parametrize("text", ["", "<think>a b</think>\n<answer>x</answer>", "  two  spaces\n\nand lines ",
                                  "one"])
def test_stream_pieces_join_to_the_text(text):
    assert "".join(_pieces(text)) == text and "" not in _pieces(text)


def test_a_stream_says_it_waits_while_the_model_works(served, stub_factory, media_dir, monkeypatch):
    import r1omni.serve.app as app_module

    monkeypatch.setattr(app_module, "_KEEP_ALIVE_SECONDS", 0.05)
    stub = stub_factory(hold=True)
    part = {"type": "video_url", "video_url": {"url": _data_url(media_dir / "clip.mp4", "video/mp4")}}
    with served(stub) as (_, base_url):
        lines = []
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", timeout=60,
                          json={"model": "stub", "messages": _ask(part), "stream": True}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith(":"):
                    stub.release.set()   # the model answers only once the stream has said it is waiting
    events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert any(line.startswith(":") for line in lines) and events[-1] == "[DONE]"
    assert lines.index(next(line for line in lines if line.startswith(":"))) > lines.index("data: " + events[0])


@pytest.mark.parametrize("url, status, code", [
    ("https://example.com/a.mp4", 400, "remote_url_refused"), ("HTTP://[::1", 400, "remote_url_refused"),
    ("rtsp://camera/stream", 400, "remote_url_refused"), ("file://other-host/a.mp4", 400, "remote_url_refused"),
    ("file://[::1/a.mp4", 400, "invalid_url"), ("blob:abc", 400, "unsupported_url"),
    ("data:video/mp4,notbase64", 400, "invalid_data_url"), ("data:video/mp4;base64,", 400, "invalid_base64"),
    ("clip.mp4", 403, "paths_disabled"), ("file:///srv/clip.mp4", 403, "paths_disabled"),
])
def test_urls_are_read_locally_or_refused_by_name(url, status, code):
    from r1omni.serve.chat import _from_url
    from r1omni.serve.errors import ServeError

    with pytest.raises(ServeError) as refused:
        _from_url(url, "messages[0].content[0].video_url.url", ServeConfig(), "req")
    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.message.startswith("messages[0].content[0].video_url.url: ")
