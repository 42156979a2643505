"""``predict_files``: one record per file, in order; a file that cannot be read gets an error naming it
while the rest of its batch is answered; audio-only files work with ``modalities="audio"``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r1omni.inference import Prediction, predict_files, sample_for_path
from r1omni.media import write_audio
from r1omni.models import Completions, PreparedBatch, SamplingConfig

FIELDS = {"path", "think", "answer", "label", "format_ok", "output", "error", "timings", "cue_levels", "claims",
          "face_crop", "transcript"}
STAGES = {"decode_seconds", "preprocess_seconds", "generate_seconds"}
SHORT = SamplingConfig(max_new_tokens=5)


@pytest.fixture(scope="module")
def tiny_policy():
    from r1omni.models import init_preset

    return init_preset("qwen2.5-omni-tiny", seed=0)


@pytest.fixture(scope="module")
def corrupt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 64)
    return path


@pytest.fixture(scope="module")
def wav_file(tmp_path_factory):
    waveform = (0.3 * np.sin(2 * np.pi * 180 * np.arange(16000) / 16000)).astype(np.float32)
    return write_audio(tmp_path_factory.mktemp("audio") / "voice.wav", waveform)


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory):
    """10 ms of tone: decodes fine, but too short for one Qwen2.5-Omni audio token."""
    waveform = (0.3 * np.sin(np.arange(160) / 5)).astype(np.float32)
    return write_audio(tmp_path_factory.mktemp("short") / "short.wav", waveform)


def check_answered(record: Prediction, path) -> None:
    assert record.path == str(path) and record.error is None
    answer = record.reply
    assert isinstance(answer.output, str) and isinstance(answer.answer, str)
    assert isinstance(answer.format_ok, bool)
    assert answer.think is None or isinstance(answer.think, str)
    assert set(record.timings) == STAGES and all(v >= 0 for v in record.timings.values())


def test_a_corrupt_file_does_not_stop_its_batch(tiny_policy, av_clip, silent_clip, corrupt_file):
    paths = [av_clip, corrupt_file, silent_clip]
    records = list(predict_files(tiny_policy, paths, batch_size=3, sampling=SHORT))
    assert [r.path for r in records] == [str(p) for p in paths]
    check_answered(records[0], av_clip)
    check_answered(records[2], silent_clip)  # no audio stream: answered from the frames
    broken = records[1]
    assert broken.error is not None and "broken.mp4" in broken.error
    assert broken.reply is None and set(broken.timings) == {"decode_seconds"}
    as_json = broken.to_dict()
    assert set(as_json) == FIELDS
    assert as_json["output"] is None and as_json["answer"] is None and as_json["label"] is None
    assert as_json["format_ok"] is False and as_json["claims"] == [] and as_json["cue_levels"] == {}


def test_audio_too_short_for_the_model_fails_alone(tiny_policy, av_clip, short_wav):
    paths = [av_clip, short_wav, av_clip]
    records = list(predict_files(tiny_policy, paths, batch_size=3, sampling=SHORT))
    assert [r.path for r in records] == [str(p) for p in paths]
    check_answered(records[0], av_clip)
    check_answered(records[2], av_clip)
    assert records[1].reply is None and "short.wav" in records[1].error and "too short" in records[1].error


class EchoPolicy:
    """Says what it was given: "happy" for a clip with audio, "sad" for one without, and the frame count."""

    family = "stub"

    def __init__(self) -> None:
        self.module = torch.nn.Identity()
        self.batch_sizes: list[int] = []

    @property
    def num_frames(self) -> int:
        return 3

    def check_clip(self, clip):
        pass  # reads any clip

    def prepare(self, clips):
        texts = [f"<think>{0 if c.frames is None else len(c.frames)} frames</think>\n"
                 f"<answer>{'happy' if c.waveform is not None else 'sad'}</answer>" for c in clips]
        return PreparedBatch(torch.zeros(len(clips), 1, dtype=torch.long), torch.ones(len(clips), 1, dtype=torch.long),
                             media={"texts": texts})

    def generate(self, batch, num_return_sequences=1, sampling=None):
        self.batch_sizes.append(batch.num_clips)
        n = batch.num_clips
        return Completions(ids=torch.zeros(n, 1, dtype=torch.long), mask=torch.ones(n, 1, dtype=torch.long),
                           texts=batch.media["texts"], clip_index=torch.arange(n))


def test_each_record_gets_its_own_clips_answer(av_clip, silent_clip, corrupt_file):
    policy = EchoPolicy()
    paths = [silent_clip, corrupt_file, av_clip, corrupt_file, av_clip]
    records = list(predict_files(policy, paths, batch_size=3))
    assert policy.batch_sizes == [2, 1]  # failed files are not sent to the model
    assert [r.reply and r.reply.label for r in records] == ["sad", None, "happy", None, "happy"]
    first = records[0].reply
    assert first.think == "3 frames" and first.answer == "sad" and first.format_ok is True
    assert records[2].reply.output == "<think>3 frames</think>\n<answer>happy</answer>"
    assert [r.error is None for r in records] == [True, False, True, False, True]


def test_audio_only_file(tiny_policy, wav_file, av_clip):
    [record] = predict_files(tiny_policy, [wav_file], modalities="audio", sampling=SHORT)
    check_answered(record, wav_file)
    # A video file under modalities="audio" is read for its soundtrack only.
    [from_video] = predict_files(tiny_policy, [av_clip], modalities="audio", sampling=SHORT)
    check_answered(from_video, av_clip)
    # The same wav with video expected has no frames to read: an error naming the file, not a crash.
    [as_video] = predict_files(tiny_policy, [wav_file], modalities="video", sampling=SHORT)
    assert as_video.error is not None and "voice.wav" in as_video.error


def test_sample_for_path_reads_the_headers_not_the_name(tiny_policy, wav_file, av_clip, tmp_path):
    """D13: predict chose by suffix, so an audio-only .mp4 failed with "no video stream" while the
    server, which probes the headers, answered it."""
    import shutil

    audio_named_mp4 = tmp_path / "audio_only.mp4"
    shutil.copyfile(write_audio(tmp_path / "voice.m4a", np.zeros(16000, np.float32)), audio_named_mp4)
    wav_named_mp4 = shutil.copyfile(wav_file, tmp_path / "voice_named.mp4")
    for path in (wav_file, audio_named_mp4, wav_named_mp4):
        assert sample_for_path(path).audio == str(path) and sample_for_path(path).video is None
    assert sample_for_path(av_clip).video == str(av_clip)
    assert sample_for_path(tmp_path / "missing.wav").video == str(tmp_path / "missing.wav")   # decoding says why
    [record] = predict_files(tiny_policy, [audio_named_mp4], sampling=SHORT)
    check_answered(record, audio_named_mp4)


class ClaimingPolicy(EchoPolicy):
    """Always reasons with three cue claims: a high pitch, a low pitch and raised brows."""

    def prepare(self, clips):
        batch = super().prepare(clips)
        batch.media["texts"] = ["<think>The pitch is high. The pitch is low. The brows are raised.</think>"
                                "<answer>happy</answer>"] * len(clips)
        return batch


def test_each_claim_gets_its_verdict_against_the_measured_cues(tmp_path):
    t = np.arange(16000) / 16000
    high_voice = sum(np.sin(2 * np.pi * k * 260 * t) / k for k in range(1, 5))   # 260 Hz: high against 160 Hz
    path = write_audio(tmp_path / "high.wav", (0.1 * high_voice).astype(np.float32))
    [record] = predict_files(ClaimingPolicy(), [path], modalities="audio")
    verdicts = [(c.phrase, c.verdict, c.actual) for c in record.reply.claims]
    assert record.reply.cue_levels["pitch"] == "high"
    assert record.to_dict()["claims"][0] == {"phrase": "the pitch is high", "cue": "pitch", "claimed": "high",
                                             "actual": "high", "verdict": "supported"}
    assert verdicts == [("the pitch is high", "supported", "high"), ("the pitch is low", "contradicted", "high"),
                        ("the brows are raised", "not checkable", None)]


def test_r1omni_load_predicts_through_the_one_answer_path(tmp_path, av_clip, corrupt_file):
    """``r1omni.load(folder).predict(paths)`` gives what ``predict_files`` gives for the same saved model and
    options (one answer path), a bad file its error, a single path one record; unknown options are refused
    when loading."""
    import r1omni
    from r1omni.models import init_preset, load_policy

    folder = tmp_path / "model"
    init_preset("qwen2.5-omni-tiny", seed=0).save(folder)
    model = r1omni.load(folder, sampling=SHORT, batch_size=2)
    records = model.predict([av_clip, corrupt_file])
    policy = load_policy(folder)
    policy.module.eval()
    expected = list(predict_files(policy, [str(av_clip), str(corrupt_file)], sampling=SHORT, batch_size=2))
    strip = lambda record: {k: v for k, v in record.to_dict().items() if k != "timings"}  # noqa: E731
    assert [strip(r) for r in records] == [strip(r) for r in expected]
    assert records[0].error is None and "broken.mp4" in records[1].path and records[1].error
    assert [strip(r) for r in model.predict(av_clip)] == [strip(expected[0])]
    with pytest.raises(TypeError, match=r"unknown predict option\(s\) \['temperature'\]; options are \["):
        r1omni.load(folder, temperature=0.7)


def test_the_version_is_the_installed_distributions_or_pyprojects():
    import tomllib
    from importlib import metadata
    from pathlib import Path

    import r1omni

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    try:
        installed = metadata.version("r1omni")
    except metadata.PackageNotFoundError:
        installed = None
    assert r1omni.__version__ == (installed or pyproject["project"]["version"])
