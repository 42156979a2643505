"""The `r1omni` command end to end on tiny models and generated clips (subprocesses, as users run it)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from r1omni.media import write_clip

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def r1omni(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1omni.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_python_dash_m_runs_the_same_command():
    as_module = subprocess.run([sys.executable, "-m", "r1omni", "--help"], capture_output=True, text=True,
                               timeout=60, env=ENV)
    assert as_module.returncode == 0, as_module.stderr
    assert as_module.stdout == r1omni("--help").stdout
    assert "demo" in as_module.stdout


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    done = r1omni("models", "init", "--preset", "qwen2.5-omni-tiny", "-o", str(out), "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "qwen2.5-omni-tiny" in done.stdout
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 48, 48, 3), dtype=np.uint8)
    tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    return {"with_audio": write_clip(folder / "with_audio.mp4", frames, 8, tone),
            "silent": write_clip(folder / "silent.mp4", frames, 8), "corrupt": corrupt}


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = r1omni("synth", "generate", str(out), "--preset", "tiny", "--quiet")
    assert done.returncode == 0, done.stderr
    return out


def test_help_lists_the_subcommands():
    done = r1omni("--help")
    for command in ("data", "synth", "models", "predict", "train", "eval", "compare", "explain", "serve", "demo"):
        assert command in done.stdout


def test_models_list_shows_every_family():
    done = r1omni("models", "list")
    for preset in ("humanomni-tiny", "qwen2.5-omni-tiny", "qwen3-omni-tiny", "qwen2.5-omni-demo", "r1-omni-0.5b"):
        assert preset in done.stdout


def test_predict_json_keeps_going_past_a_corrupt_file(tiny_model, clips):
    done = r1omni("predict", "--model", str(tiny_model), str(clips["with_audio"]), str(clips["silent"]),
                  str(clips["corrupt"]), "--json", "--max-new-tokens", "6")
    assert done.returncode == 3, done.stderr   # ExitCode.PARTIAL: some inputs failed, each named in its record
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [Path(r["path"]).name for r in rows] == ["with_audio.mp4", "silent.mp4", "corrupt.mp4"]
    for row in rows[:2]:
        assert row["error"] is None and isinstance(row["output"], str)
        assert set(row) >= {"path", "think", "answer", "label", "format_ok", "error", "timings"}
    assert "corrupt.mp4" in rows[2]["error"]


def test_predict_audio_only_mode(tiny_model, clips):
    done = r1omni("predict", "--model", str(tiny_model), str(clips["with_audio"]), "--modal", "audio",
                  "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    assert "with_audio.mp4" in done.stdout and "ERROR" not in done.stdout


def test_predict_face_crop_finds_the_astronaut_and_says_no_face_elsewhere(tiny_model, clips, tmp_path):
    from real_media import small_face_frames

    face = write_clip(tmp_path / "astronaut.mp4", small_face_frames(8), 8)
    done = r1omni("predict", "--model", str(tiny_model), str(face), str(clips["silent"]), "--face-crop",
                  "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    [(found, frames)] = re.findall(r"face: found in (\d+)/(\d+) frames; the model saw the face crop", done.stdout)
    assert found == frames
    assert f"face: found in 0/{frames} frames; the model saw the whole frame (no face found)" in done.stdout
    done = r1omni("predict", "--model", str(tiny_model), str(face), "--face-crop", "--json", "--max-new-tokens", "4")
    [row] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert row["face_crop"] == {"face_found": True, "face_frames": int(frames), "frames": int(frames),
                                "used": "face crop"}


@pytest.fixture(scope="module")
def speaking_clip(tmp_path_factory) -> Path:
    from real_media import astronaut_frames, require_espeak, speak

    from r1omni.media import load_audio

    require_espeak()
    folder = tmp_path_factory.mktemp("speech")
    speech = load_audio(speak(folder / "speech.wav", "please call me back tomorrow morning")).waveform
    return write_clip(folder / "talk.webm", astronaut_frames(8, 128), 8 / (len(speech) / 16000), speech)


def test_predict_transcribe_reads_the_speech_as_the_subtitle(tiny_model, speaking_clip):
    done = r1omni("predict", "--model", str(tiny_model), str(speaking_clip), "--transcribe", "--json",
                  "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    text = row["transcript"]["text"].lower()
    assert sum(word in text for word in ("please", "call", "back", "tomorrow", "morning")) >= 3, text
    assert row["transcript"]["words"] and row["error"] is None
    done = r1omni("predict", "--model", str(tiny_model), str(speaking_clip), "--transcribe", "--max-new-tokens", "4")
    assert f"transcript (en): {row['transcript']['text']}" in done.stdout


def test_predict_transcribe_without_the_extra_names_the_install_command(tiny_model, clips):
    hide = ("import sys; sys.modules['faster_whisper'] = None; from r1omni.cli import main; "
            f"sys.exit(main(['predict', '--model', {str(tiny_model)!r}, {str(clips['with_audio'])!r}, "
            "'--transcribe', '--max-new-tokens', '4']))")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 2
    assert "pip install 'r1omni[asr]'" in done.stderr and "Traceback" not in done.stderr


def test_predict_segment_writes_a_timeline_per_recording(tiny_model, tmp_path):
    from real_media import recording, require_espeak

    require_espeak()
    clip = recording(tmp_path / "session.mp4")
    done = r1omni("predict", "--model", str(tiny_model), str(clip), "--segment", "4", "-o", str(tmp_path / "out"),
                  "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "session"
    rows = [json.loads(line) for line in (folder / "windows.jsonl").read_text().splitlines()]
    assert [(r["start_seconds"], r["end_seconds"]) for r in rows] == [(4.0 * i, 4.0 * i + 4) for i in range(15)]
    assert all(set(r) >= {"think", "answer", "label", "transcript"} for r in rows)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["windows"] == 15 and summary["failed"] == 0
    assert (folder / "timeline.png").stat().st_size > 1000
    assert "session.mp4: 15 windows (0 failed)" in done.stdout


def test_eval_then_compare(tiny_model, tiny_benchmark, tmp_path):
    for name in ("a", "b"):
        done = r1omni("eval", "--model", str(tiny_model), "--data", str(tiny_benchmark / "test_id.jsonl"),
                      "-o", str(tmp_path / name / "synth"), "--max-new-tokens", "6", "--prompt", "train")
        assert done.returncode == 0, done.stderr
        assert "normalized WAR" in done.stdout
        for produced in ("predictions.jsonl", "metrics.json", "report.md", "confusion_strict.png",
                         "confusion_normalized.png"):
            assert (tmp_path / name / "synth" / produced).is_file(), produced
    metrics = json.loads((tmp_path / "a" / "synth" / "metrics.json").read_text())
    assert metrics["normalized"]["n"] == 14 and metrics["strict"]["labels"][0] == "happy"
    done = r1omni("compare", f"first={tmp_path / 'a'}", f"second={tmp_path / 'b'}", "--out", str(tmp_path / "t.png"))
    assert done.returncode == 0, done.stderr
    assert "| first |" in done.stdout and "| second |" in done.stdout
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_data_import_reports_counts(tiny_benchmark, tmp_path):
    out = tmp_path / "imported.jsonl"
    done = r1omni("data", "import", "--corpus", "manifest", str(tiny_benchmark / "test_id.jsonl"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "read 14, used 14, skipped 0" in done.stdout
    assert len(out.read_text().splitlines()) == 14


def test_errors_are_one_line_not_a_traceback(tmp_path):
    done = r1omni("predict", "--model", str(tmp_path / "missing"), "x.mp4")
    assert done.returncode == 2
    assert "error" in done.stderr and "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_and_answers(tiny_model, clips):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "r1omni.cli", "serve", "--model", str(tiny_model),
                               "--port", str(port), "--max-new-tokens", "4", "--label-set", "synth"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert json.loads(response.read())["status"] == "ok"
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError(f"server did not start: {server.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model", timeout=10) as response:
            assert json.loads(response.read())["family"] == "qwen2_5_omni"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_choice_lists_match_the_registries():
    """The CLI keeps literal choices (so `--help` imports nothing heavy); they must name what exists."""
    from r1omni import cli
    from r1omni.clips import MODALITIES
    from r1omni.data import CORPORA
    from r1omni.labels import LABEL_SETS
    from r1omni.timeline import SPLITS

    assert set(cli.MODALITY_CHOICES) == set(MODALITIES)
    assert set(cli.CORPUS_CHOICES) == set(CORPORA)
    assert set(cli.LABEL_SET_CHOICES) == set(LABEL_SETS)
    assert set(cli.SEGMENT_CHOICES) == set(SPLITS)


def test_serve_flags_leave_defaults_to_the_config():
    from r1omni.cli import _SERVE_FLAGS, build_parser
    from r1omni.serve.config import ServeConfig

    args = build_parser().parse_args(["serve", "--model", "m"])
    assert not set(vars(args)) & set(_SERVE_FLAGS)  # nothing the user did not give reaches ServeConfig
    given = build_parser().parse_args(["serve", "--model", "m", "--max-queue", "3", "--modal", "audio"])
    assert (given.max_queue, given.modalities) == (3, "audio")
    assert set(_SERVE_FLAGS) <= {f for f in ServeConfig.__dataclass_fields__}


def test_every_serve_config_field_is_settable_from_r1omni_serve(monkeypatch, tmp_path):
    """Each field of ServeConfig has its flag, and a value given there reaches the server's config."""
    import dataclasses

    import r1omni.serve
    from r1omni.cli import main
    from r1omni.serve.config import ServeConfig

    given = {"media_root": str(tmp_path), "label_set": "synth", "model_name": "named", "upload_dir": str(tmp_path),
             "max_upload_bytes": 3 * 1024 * 1024, "max_duration_seconds": 7.0, "max_recording_seconds": 70.0,
             "max_timeline_windows": 9, "upload_idle_timeout_seconds": 4.0, "request_timeout_seconds": 5.0,
             "max_queue": 3, "max_batch_size": 2, "batch_window_seconds": 0.5, "max_new_tokens": 11,
             "modalities": "audio", "prompt": "train", "explain_method": "omit", "device": "cpu"}
    assert set(given) == {f.name for f in dataclasses.fields(ServeConfig)}, "a ServeConfig field without a test value"
    argv = ["serve", "--model", "m"]
    for name, value in given.items():
        if name == "max_upload_bytes":
            argv += ["--max-upload-mb", "3"]
        else:
            argv += ["--" + name.replace("_", "-"), str(value)]
    seen = {}
    monkeypatch.setattr(r1omni.serve, "run", lambda model_dir, host, port, **fields: seen.update(fields))
    assert main(argv) == 0
    config = ServeConfig(**seen)
    assert {name: getattr(config, name) for name in given} == given


class _Seen(Exception):
    """Raised by a stand-in for the work a command hands over (``_stop``): its arguments are what a test reads."""


def _stop(name):
    def record(*args, **kwargs):
        raise _Seen(name, args, kwargs)
    return record


class _StubModel:
    """What the clip-loading commands ask of a model before they hand the clips over."""

    family = "stub"

    def __init__(self, num_frames: int) -> None:
        import torch

        self.num_frames, self.module = num_frames, torch.nn.Linear(1, 1)

    def check_clip(self, clip) -> None:
        pass


def test_explain_by_reference_decodes_the_reference_clip_and_passes_it_on(monkeypatch, tmp_path, capsys):
    import numpy as np

    import r1omni.explain.attribution
    import r1omni.models
    from r1omni.cli import main
    from r1omni.media import write_clip
    from r1omni.schema import Sample, write_samples

    clip = write_clip(tmp_path / "neutral.mp4", np.full((4, 32, 32, 3), 90, np.uint8), 8, np.zeros(8000, np.float32))
    manifest = tmp_path / "clips.jsonl"
    write_samples(manifest, [Sample(id="a", corpus="files", video=str(clip), label="happy")])
    monkeypatch.setattr(r1omni.models, "load_policy", lambda *args, **kwargs: _StubModel(num_frames=2))
    monkeypatch.setattr(r1omni.explain.attribution, "attribute", _stop("explain"))
    command = ["explain", "--model", "m", "--data", str(manifest), "-o", str(tmp_path / "out"), "--method", "reference"]
    assert main(command) == 2 and "--reference CLIP" in capsys.readouterr().err     # the pair goes together
    assert main(command + ["--reference", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    with pytest.raises(_Seen) as seen:
        main(command + ["--reference", str(clip)])
    kwargs = seen.value.args[2]
    assert kwargs["method"] == "reference" and kwargs["reference"].frames.shape[0] == 2
    assert kwargs["reference"].frames.mean() == pytest.approx(90, abs=3)
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["reference"] == str(clip)
    # An audio file is read as audio (a reference for audio-only clips), not as a video container.
    from r1omni.media import write_audio

    sound = write_audio(tmp_path / "neutral.wav", np.full(8000, 0.25, np.float32), 16000)
    with pytest.raises(_Seen) as seen:
        main(command + ["--reference", str(sound)])
    reference = seen.value.args[2]["reference"]
    assert reference.frames is None and reference.waveform.mean() == pytest.approx(0.25, abs=0.01)


def test_explain_reads_the_clips_as_eval_does(monkeypatch, tmp_path):
    """``explain`` takes eval's clip options (one helper adds them to every command that loads clips), so it
    attributes a model under the input ``eval`` scored it with; before, it had no --modalities, --face-crop,
    --transcribe or --no-subtitle."""
    import r1omni.evaluate
    import r1omni.explain.attribution
    import r1omni.models
    from r1omni.cli import main
    from r1omni.schema import Sample, write_samples

    manifest = tmp_path / "clips.jsonl"
    write_samples(manifest, [Sample(id="a", corpus="files", audio=str(tmp_path / "a.wav"), label="happy")])
    monkeypatch.setattr(r1omni.models, "load_policy", lambda *args, **kwargs: _StubModel(num_frames=3))
    monkeypatch.setattr(r1omni.evaluate, "evaluate", _stop("eval"))
    monkeypatch.setattr(r1omni.explain.attribution, "attribute", _stop("explain"))
    options = ["--modalities", "audio", "--face-crop", "--transcribe", "--no-subtitle", "--prompt", "train"]
    read = {}
    for command in ("eval", "explain"):
        with pytest.raises(_Seen) as seen:
            main([command, "--model", "m", "--data", str(manifest), "-o", str(tmp_path / command), *options])
        _, args, kwargs = seen.value.args
        read[command] = args[4] if command == "eval" else args[2]   # EvalOptions / ClipLoader
    settings = ("prompt", "modalities", "use_subtitle", "face_crop", "transcribe")
    assert [getattr(read["eval"], name) for name in settings] == ["train", "audio", False, True, True]
    assert [getattr(read["explain"], name) for name in settings] == ["train", "audio", False, True, True]
    for command in ("eval", "explain"):   # the run's record is written before its first clip
        record = yaml.safe_load((tmp_path / command / "config.yaml").read_text())
        assert (record["command"], record["model"], record["data"]) == (command, "m", str(manifest))
        assert [record[name] for name in settings] == ["train", "audio", False, True, True]
        environment = json.loads((tmp_path / command / "environment.json").read_text())
        assert {"torch", "torch_threads", "cpu_model"} <= set(environment)
