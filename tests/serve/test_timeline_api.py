"""The server's per-request face crop and transcript, and POST /v1/timeline: a long recording answered
window by window as an NDJSON stream (real espeak-ng speech over the astronaut photo)."""

from __future__ import annotations

import json

import pytest
from real_media import UTTERANCES, recording, require_espeak, small_face_frames, speak

from r1omni.media import load_audio, write_clip

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def talking_face(tmp_path_factory):
    require_espeak()
    folder = tmp_path_factory.mktemp("talk")
    speech = load_audio(speak(folder / "speech.wav", "please call me back tomorrow morning")).waveform
    return write_clip(folder / "talk.mp4", small_face_frames(8), 8 / (len(speech) / 16000), speech)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    require_espeak()
    return recording(tmp_path_factory.mktemp("session") / "session.mp4", seconds=30,
                     utterances=((5.5, UTTERANCES[0][1]), (25.5, UTTERANCES[1][1])))


def _lines(response) -> list[dict]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


async def test_face_crop_and_transcript_are_options_of_a_request(serve, policy, talking_face):
    async with serve(policy) as (client, app):
        plain = (await client.post("/v1/predict", files={"file": ("talk.mp4", talking_face.read_bytes())})).json()
        asked = await client.post("/v1/predict?face_crop=true", data={"transcribe": "true"},
                                  files={"file": ("talk.mp4", talking_face.read_bytes())})
    assert plain["face_crop"] is None and plain["transcript"] is None
    body = asked.json()
    assert asked.status_code == 200, asked.text
    assert body["face_crop"]["face_found"] and body["face_crop"]["used"] == "face crop"
    heard = body["transcript"]["text"].lower()
    assert sum(word in heard for word in ("please", "call", "back", "tomorrow", "morning")) >= 3, heard
    assert body["transcript"]["words"][0]["start_seconds"] >= 0  # seconds in the name (was "start")


async def test_a_recording_streams_one_line_per_window_then_the_summary(serve, policy, session):
    async with serve(policy, max_batch_size=3) as (client, app):
        response = await client.post("/v1/timeline?segment_seconds=5&transcribe=true",
                                     files={"file": ("session.mp4", session.read_bytes())})
    assert response.status_code == 200, response.text
    lines = _lines(response)
    start, windows, summary = lines[0], lines[1:-1], lines[-1]
    assert start["type"] == "start" and start["duration_seconds"] == pytest.approx(30, abs=0.2)
    assert [w["type"] for w in windows] == ["window"] * 6
    assert [(w["start_seconds"], w["end_seconds"]) for w in windows] == [(5.0 * i, 5.0 * i + 5) for i in range(6)]
    assert [w["done"] for w in windows] == [1, 2, 3, 4, 5, 6] and {w["total"] for w in windows} == {6}
    assert all(w["error"] is None for w in windows)
    spoken = [w for w in windows if w["transcript"]]
    assert [w["index"] for w in spoken] == [1, 5]   # utterances at 5 s and 25 s
    labels = [w["label"] or "(none)" for w in windows]
    assert summary["type"] == "summary"
    assert summary["summary"]["windows"] == 6 and summary["summary"]["failed"] == 0
    assert summary["summary"]["share_of_time"] == {name: pytest.approx(labels.count(name) / 6, abs=0.01)
                                                    for name in set(labels)}
    assert len(summary["summary"]["changes"]) == sum(a != b for a, b in zip(labels, labels[1:]))


async def test_timeline_limits_and_bad_options(serve, policy, session, media_dir):
    async with serve(policy, max_recording_seconds=10) as (client, app):
        too_long = await client.post("/v1/timeline", files={"file": ("session.mp4", session.read_bytes())})
        bad = await client.post("/v1/timeline?segment_seconds=2&overlap_seconds=3",
                                files={"file": ("clip.mp4", (media_dir / "clip.mp4").read_bytes())})
        broken = await client.post("/v1/timeline", files={"file": ("x.mp4", (media_dir / "corrupt.mp4").read_bytes())})
    assert too_long.status_code == 413 and "the limit is 10 s" in too_long.json()["message"]
    assert bad.status_code == 422 and "overlap" in bad.json()["message"]
    assert broken.status_code == 422 and broken.json()["error"] == "unreadable_media"


async def test_a_recording_that_fails_midway_ends_with_an_error_line(serve, policy, media_dir):
    async with serve(policy) as (client, app):
        response = await client.post("/v1/timeline?segment_seconds=0.5",
                                     files={"file": ("cut.mkv", (media_dir / "cut.mkv").read_bytes())})
    lines = _lines(response)
    assert response.status_code == 200 and lines[0]["type"] == "start"
    assert lines[-1]["type"] in ("error", "summary")
    if lines[-1]["type"] == "error":
        assert lines[-1]["message"].startswith("cut.mkv: ")
