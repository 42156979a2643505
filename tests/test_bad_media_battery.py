"""The reliability battery's bad-media table, standing: every input through ``predict_files`` on both tiny
model families (random weights), one record per input in order, an answer for valid media and an error
naming the file and its cause for the rest. Generated in seconds; one batch per family."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from r1omni.inference import predict_files
from r1omni.media import write_audio, write_clip
from r1omni.models import SamplingConfig, init_preset

RATE = 16000


def _tone(seconds: float, frequency_hz: float = 220.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * frequency_hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


def _frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(count)
    return rng.integers(0, 255, (count, height, width, 3), dtype=np.uint8)


def _cut(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _avi_with_a_dropped_frame(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index, pts in enumerate([0, *range(2, 31)]):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 8, np.uint8), format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _nan_wav(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_f32le", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.full((1, 1600), np.nan, np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory) -> list[tuple[Path, str | None]]:
    """(input, None for an answer or a piece of the expected error) for each case of the battery."""
    d = tmp_path_factory.mktemp("battery")
    ok = write_clip(d / "ok.mp4", _frames(12), 8, _tone(1.5))
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video\n" * 50)
    faststart = write_clip(d / "faststart_source.mp4", _frames(30), 10, _tone(3.0), faststart=True)
    (d / "empty_dir").mkdir()
    (d / "frames").mkdir()
    for i, frame in enumerate(_frames(4)):
        Image.fromarray(frame).save(d / "frames" / f"{i:02d}.jpg")
    os.mkfifo(d / "fifo.mp4")
    (d / "loop.mp4").symlink_to(d / "loop.mp4")
    (d / "dangling.mp4").symlink_to(d / "nowhere.mp4")
    header_only = d / "header_only.wav"
    with av.open(str(header_only), "w") as out:
        out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        out.start_encoding()                                         # a 44-byte header, no samples
    m4a = write_audio(d / "audio.m4a", _tone(1.0))
    shutil.copyfile(m4a, d / "audio_named.mp4")
    mkv = write_clip(d / "whole.mkv", _frames(24), 8, _tone(3.0))
    return [
        (ok, None),
        (d / "empty.mp4", "empty file (0 bytes)"),
        (d / "text.mp4", "not a readable media file"),
        (_cut(faststart, d / "trunc50_faststart.mp4"), "truncated"),
        (d / "empty_dir", "frame folder holds no images"),
        (d / "frames", None),
        (d / "missing.mp4", "file not found"),
        (d / "fifo.mp4", "not a regular file (a FIFO / named pipe)"),
        (d / "loop.mp4", "symbolic link loop"),
        (d / "dangling.mp4", "broken symbolic link"),
        (write_clip(d / "one_frame.mp4", _frames(1), 8), None),
        (write_clip(d / "tiny_2x2.mp4", _frames(4, 2, 2), 8), None),
        (_nan_wav(d / "nan.wav"), "non-finite samples"),
        (header_only, "zero samples"),
        (write_clip(d / "no_audio.mp4", _frames(8), 8), None),
        (m4a, None),
        (d / "audio_named.mp4", None),                                   # D13
        (_avi_with_a_dropped_frame(d / "gap.avi"), None),                # D9
        (_cut(mkv, d / "trunc50.mkv"), "truncated"),
        (write_clip(d / "big.avi", np.full((2, 2400, 4000, 3), 70, np.uint8), 2), None),   # D8
        (write_audio(d / "short_10ms.wav", _tone(0.01)), "short"),       # D1: Qwen only, see below
    ]


@pytest.mark.parametrize("preset", ["qwen2.5-omni-tiny", "humanomni-tiny"])
def test_every_bad_input_gets_its_own_named_record(bad_media, preset):
    policy = init_preset(preset, seed=0)
    paths = [path for path, _ in bad_media]
    records = list(predict_files(policy, paths, batch_size=4, sampling=SamplingConfig(max_new_tokens=3)))
    assert [r.path for r in records] == [str(p) for p in paths]
    for (path, expected), record in zip(bad_media, records):
        if expected == "short" and preset == "humanomni-tiny":
            expected = None   # HumanOmni reads 10 ms of audio; a Qwen-Omni audio token needs more
        if expected is None:
            assert record.error is None and isinstance(record.reply.output, str), (path.name, record.error)
        else:
            assert record.error is not None and record.error.startswith(f"{path}: "), (path.name, record.error)
            assert expected in record.error, (path.name, record.error)
