"""Exit codes scripts can trust, and the CLI's messages for the reliability battery's cases: 0 all done,
3 some inputs failed, 4 nothing produced, 2 bad arguments, config, model folder or input file, 1 the
system refused (disk full) or the run diverged. Commands run in-process (``r1omni.cli.main``) on tiny
random models built from presets, so each takes about a second."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from r1omni.cli import main
from r1omni.media import write_audio, write_clip
from r1omni.models import init_preset

OK, FAILED, USAGE, PARTIAL, NOTHING = 0, 1, 2, 3, 4   # the README's table: what scripts rely on


def test_the_codes_are_named_once_and_keep_argparse_usage_at_2():
    from r1omni.cli import ExitCode

    assert [(code.name, int(code)) for code in ExitCode] == [("OK", OK), ("FAILED", FAILED), ("USAGE", USAGE),
                                                             ("PARTIAL", PARTIAL), ("NOTHING", NOTHING)]
    with pytest.raises(SystemExit) as usage:
        main(["predict"])
    assert usage.value.code == USAGE


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    init_preset("qwen2.5-omni-tiny", seed=0).save(folder)
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    frames = np.random.default_rng(0).integers(0, 255, (16, 32, 48, 3), dtype=np.uint8)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
    files = {suffix: write_clip(folder / f"a{suffix}", frames, 8, tone) for suffix in (".mkv", ".webm", ".mp4")}
    (folder / "text.mp4").write_text("not a video\n" * 40)
    data = files[".mkv"].read_bytes()
    (folder / "cut.mkv").write_bytes(data[: len(data) // 2])
    return {**files, "text": folder / "text.mp4", "cut": folder / "cut.mkv",
            "wav": write_audio(folder / "voice.wav", tone)}


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]   # every line must be JSON


def _predict(model, *args) -> list[str]:
    return ["predict", "--model", str(model), "--max-new-tokens", "3", *map(str, args)]


def test_predict_says_all_some_or_none_in_its_exit_code(model, media, capsys):
    """D23: predict returned 0 unless every input failed (18 errors in 45 -> 0)."""
    assert main(_predict(model, "--json", media[".mp4"], media["wav"])) == OK
    assert main(_predict(model, "--json", media[".mp4"], media["text"])) == PARTIAL
    assert main(_predict(model, "--json", media["text"], media["cut"])) == NOTHING
    rows = _json_lines(capsys.readouterr().out)
    assert [Path(r["path"]).name for r in rows] == ["a.mp4", "voice.wav", "a.mp4", "text.mp4", "text.mp4", "cut.mkv"]


def test_segment_gives_recordings_that_share_a_stem_a_folder_each(model, media, tmp_path, capsys):
    """D5: a.mkv, a.webm and a.mp4 all wrote OUT/a/ and said so three times; one timeline was left."""
    out = tmp_path / "tl"
    code = main(_predict(model, "--segment", "1", "-o", out, media[".mkv"], media[".webm"], media[".mp4"]))
    assert code == OK
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv", "a.mp4", "a.webm"]
    for name in ("a.mkv", "a.mp4", "a.webm"):
        assert len((out / name / "windows.jsonl").read_text().splitlines()) == 2
    assert capsys.readouterr().out.count("wrote ") == 3


def test_segment_json_keeps_stdout_json_and_refuses_a_file_cut_short(model, media, tmp_path, capsys):
    """D16: the error came out as plain text inside the JSON stream. D10: the cut file was answered."""
    code = main(_predict(model, "--segment", "1", "--json", "-o", tmp_path, media[".mkv"], media["text"],
                         media["cut"]))
    assert code == PARTIAL
    rows = _json_lines(capsys.readouterr().out)
    errors = {Path(r["path"]).name: r["error"] for r in rows if "index" not in r}
    assert errors["text.mp4"].startswith(f"{media['text']}: not a readable media file")
    assert re.match(rf"{re.escape(str(media['cut']))}: truncated: the container declares", errors["cut.mkv"])
    assert [r["index"] for r in rows if "index" in r] == [0, 1] and not (tmp_path / "cut").exists()


def test_segment_seconds_must_be_finite(model, media, tmp_path, capsys):
    """D17: inf was accepted."""
    assert main(_predict(model, "--segment", "inf", "-o", tmp_path / "out", media[".mkv"])) == USAGE
    assert "window_seconds must be a finite number of seconds >= 0.1, got inf" in capsys.readouterr().err


def test_eval_of_an_empty_manifest_produces_nothing_and_says_so(tmp_path, capsys):
    """D23: metrics over 0 clips, rc 0."""
    (tmp_path / "empty.jsonl").write_text("")
    code = main(["eval", "--model", str(tmp_path / "unused"), "--data", str(tmp_path / "empty.jsonl"),
                 "-o", str(tmp_path / "out")])
    assert code == NOTHING and not (tmp_path / "out").exists()
    assert "empty.jsonl holds no clips; nothing written" in capsys.readouterr().err


def test_manifest_problems_name_the_file_and_line(tmp_path, capsys):
    """D18: a folder gave a traceback (IsADirectoryError); a Latin-1 byte a message naming neither file nor line."""
    assert main(["eval", "--model", "m", "--data", str(tmp_path), "-o", str(tmp_path / "out")]) == USAGE
    assert f"{tmp_path}: is a folder; give the manifest file" in capsys.readouterr().err
    manifest = tmp_path / "latin1.jsonl"
    manifest.write_bytes(b'{"id": "a", "corpus": "synth", "audio": "a.wav"}\n{"id": "b", "subtitle": "caf\xe9"}\n')
    assert main(["eval", "--model", "m", "--data", str(manifest), "-o", str(tmp_path / "out")]) == USAGE
    assert f"{manifest}:2: not UTF-8 text (byte 0xe9 at column 29); save the file as UTF-8" in capsys.readouterr().err


def test_an_eval_error_starts_on_a_line_of_its_own(model, media, tmp_path, capsys):
    """D19: the message was printed on the unfinished progress bar's line."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "x", "corpus": "synth", "audio": str(media["wav"]), "label": "bored"}) + "\n")
    assert main(["eval", "--model", str(model), "--data", str(manifest), "-o", str(tmp_path / "o"),
                 "--labels", "synth"]) == USAGE
    assert re.search(r"(^|\n)r1omni eval: error: labels \['bored'\]", capsys.readouterr().err)


def test_data_import_that_keeps_nothing_writes_nothing(ravdess_folder, tmp_path, capsys):
    """D23: 0 samples kept still wrote an empty manifest, rc 0."""
    root = ravdess_folder(tmp_path / "rav", ["clip.mp4"])
    out = tmp_path / "m.jsonl"
    assert main(["data", "import", "--corpus", "ravdess", str(root), "-o", str(out)]) == NOTHING
    assert not out.exists() and "wrote nothing: no sample was kept" in capsys.readouterr().err
    good = ravdess_folder(tmp_path / "rav2", ["clip.mp4", "01-01-03-01-01-01-01.mp4"])
    assert main(["data", "import", "--corpus", "ravdess", str(good), "-o", str(out)]) == PARTIAL
    assert len(out.read_text().splitlines()) == 1


def test_data_import_into_a_folder_is_a_usage_error_not_a_traceback(ravdess_folder, tmp_path, capsys):
    """D18: `-o FOLDER` ended in IsADirectoryError's traceback."""
    root = ravdess_folder(tmp_path / "rav", ["01-01-03-01-01-01-01.mp4"])
    (tmp_path / "out").mkdir()
    assert main(["data", "import", "--corpus", "ravdess", str(root), "-o", str(tmp_path / "out")]) == USAGE
    assert f"{tmp_path / 'out'}: is a folder; a file name was expected" in capsys.readouterr().err


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=.inf", "lr must be a positive finite number, got inf"),
    ("output_dir={file}", "output_dir {file} is a file; give a folder"),
])
def test_train_settings_that_cannot_work_are_usage_errors(tmp_path, capsys, override, message):
    """D18: lr=inf ran into NonFiniteError's traceback; an output_dir that is a file into FileExistsError's."""
    file = tmp_path / "taken"
    file.write_text("x")
    config = tmp_path / "sft.yaml"
    config.write_text(f"model: preset:qwen2.5-omni-tiny\ndata: {tmp_path / 'none.jsonl'}\n"
                      f"output_dir: {tmp_path / 'run'}\nmax_steps: 1\n")
    assert main(["train", "sft", str(config), override.format(file=file)]) == USAGE
    assert message.format(file=file) in capsys.readouterr().err


def test_a_damaged_weights_file_is_named(model, media, tmp_path, capsys):
    """D12: a cut model.safetensors gave SafetensorError's traceback naming no file."""
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:400_000])
    assert main(_predict(broken, media[".mp4"])) == USAGE
    assert f"{weights}: damaged or cut-short weights file" in capsys.readouterr().err
    weights.unlink()
    assert main(_predict(broken, media[".mp4"])) == USAGE
    assert f"{broken}: no weights file" in capsys.readouterr().err


def test_a_full_disk_is_a_failure_naming_the_destination(tmp_path, capsys, monkeypatch):
    """D18: disk full in `models init`, checkpoints and synth ended in tracebacks."""
    from r1omni.models.qwen_omni.policy import QwenOmniPolicy

    def full_disk(self, folder):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(QwenOmniPolicy, "save", lambda self, directory, **_: _save_into_full_disk(directory, full_disk))
    out = tmp_path / "model"
    assert main(["models", "init", "--preset", "qwen2.5-omni-tiny", "-o", str(out)]) == FAILED
    err = capsys.readouterr().err
    assert f"r1omni models: error: {out}: No space left on device (free some space there" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def _save_into_full_disk(directory, fail):
    from r1omni.atomic import atomic_dir

    with atomic_dir(directory) as tmp:
        fail(None, tmp)


def _sft_config(tmp_path: Path) -> Path:
    config = tmp_path / "sft.yaml"
    config.write_text(f"model: preset:qwen2.5-omni-tiny\ndata: {tmp_path / 'd.jsonl'}\noutput_dir: {tmp_path / 'run'}\n"
                      "max_steps: 1\n")
    return config


def test_train_says_whether_clips_were_skipped_or_the_run_diverged(tmp_path, capsys, monkeypatch):
    """A run that skipped unreadable clips is partial (3); one stopped by a NaN loss a failure (1), named
    without a traceback (D18)."""
    from types import SimpleNamespace

    from r1omni.train import sft
    from r1omni.train.tracking import NonFiniteError

    done = SimpleNamespace(steps=1, clip_views=2, wall_seconds=0.1, skipped_clips=0, final_model="run/final")
    monkeypatch.setattr(sft, "train_sft", lambda config: done)
    assert main(["train", "sft", str(_sft_config(tmp_path))]) == OK
    done.skipped_clips = 2
    assert main(["train", "sft", str(_sft_config(tmp_path))]) == PARTIAL

    def diverge(config):
        raise NonFiniteError("step 3: loss is nan; stopping (lower the learning rate, ...)")

    monkeypatch.setattr(sft, "train_sft", diverge)
    assert main(["train", "sft", str(_sft_config(tmp_path))]) == FAILED
    assert "r1omni train: error: step 3: loss is nan" in capsys.readouterr().err


def test_eval_and_explain_say_when_clips_were_skipped(model, media, tmp_path, capsys):
    """A clip whose media cannot be read is skipped and counted: partial (3); all of them: nothing (4)."""
    rows = [{"id": "good", "corpus": "synth", "audio": str(media["wav"]), "label": "happy"},
            {"id": "bad", "corpus": "synth", "video": str(media["text"]), "label": "sad"}]
    both, bad_only = tmp_path / "both.jsonl", tmp_path / "bad.jsonl"
    both.write_text("".join(json.dumps(row) + "\n" for row in rows))
    bad_only.write_text(json.dumps(rows[1]) + "\n")
    common = ["--model", str(model), "--max-new-tokens", "3", "--labels", "synth"]
    assert main(["eval", *common, "--data", str(both), "-o", str(tmp_path / "e1")]) == PARTIAL
    assert main(["eval", *common, "--data", str(bad_only), "-o", str(tmp_path / "e2")]) == NOTHING
    assert main(["explain", *common, "--data", str(both), "-o", str(tmp_path / "x1")]) == PARTIAL
    assert "skipped 1 clip(s) whose media could not be decoded" in capsys.readouterr().out


def test_the_readme_documents_every_code():
    """The README's "Exit codes" table has one row per ExitCode, in order: what scripts read."""
    from r1omni.cli import ExitCode

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)
    assert [int(code) for code in rows] == [int(code) for code in ExitCode]


def test_the_preregistered_study_refuses_model_switches(capsys):
    assert main(["demo", "--study", "rl-vs-sft", "--frame-size", "56", "-o", "unused"]) == USAGE
    assert "takes no --frame-size" in capsys.readouterr().err


def test_the_demo_takes_the_attribution_method(monkeypatch):
    import r1omni.demo

    given = []
    monkeypatch.setattr(r1omni.demo, "run_demo", lambda config, say, progress: given.append(config))
    assert main(["demo", "--quick", "--attribution-method", "blank", "-o", "unused"]) == OK
    assert main(["demo", "--quick", "-o", "unused"]) == OK
    assert [config.attribution_method for config in given] == ["blank", "reference"]
