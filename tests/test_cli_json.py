"""`--json` on `eval`, `compare`, `models list` and `data import`: stdout is one JSON document a script
parses (text stays the default; progress and notes go to stderr), holding what the text shows and what
the command wrote. In-process (``r1omni.cli.main``) on a tiny random model and generated media."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from r1omni.cli import ExitCode, main
from r1omni.media import write_audio
from r1omni.models import init_preset, list_presets


def _stdout_json(capsys) -> object:
    return json.loads(capsys.readouterr().out)   # the whole of stdout must be one JSON document


def test_models_list_json_names_every_preset(capsys):
    assert main(["models", "list", "--json"]) == ExitCode.OK
    presets = sorted(list_presets().items())
    assert _stdout_json(capsys) == [{"name": name, "description": text} for name, text in presets]


def test_data_import_json_counts_names_the_skipped_and_the_manifest(ravdess_folder, tmp_path, capsys):
    root = ravdess_folder(tmp_path / "rav", ["01-01-03-01-01-01-01.mp4", "clip.mp4"])
    out = tmp_path / "m.jsonl"
    assert main(["data", "import", "--corpus", "ravdess", str(root), "-o", str(out), "--json"]) == ExitCode.PARTIAL
    report = _stdout_json(capsys)
    assert (report["corpus"], report["read"], report["used"], report["output"]) == ("ravdess", 2, 1, str(out))
    [skip] = report["skipped"]
    assert Path(skip["path"]).name == "clip.mp4" and report["skip_reasons"] == {skip["reason"]: 1}
    assert len(out.read_text().splitlines()) == report["used"]
    empty = ravdess_folder(tmp_path / "none", ["clip.mp4"])
    assert main(["data", "import", "--corpus", "ravdess", str(empty), "-o", str(tmp_path / "n.jsonl"),
                 "--json"]) == ExitCode.NOTHING
    report = _stdout_json(capsys)
    assert report["used"] == 0 and report["output"] is None and not (tmp_path / "n.jsonl").exists()


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, dict, str]:
    """A tiny model evaluated on two generated voices: (run folder, the --json report, the text output)."""
    folder = tmp_path_factory.mktemp("eval")
    init_preset("qwen2.5-omni-tiny", seed=0).save(folder / "model")
    t = np.arange(16000) / 16000
    rows = [{"id": f"c{i}", "corpus": "synth", "label": label,
             "audio": str(write_audio(folder / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)))}
            for i, (hz, label) in enumerate([(220, "happy"), (330, "sad")])]
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = ["eval", "--model", str(folder / "model"), "--data", str(manifest), "--max-new-tokens", "3",
              "--labels", "synth", "--modalities", "audio"]
    from contextlib import redirect_stdout
    from io import StringIO

    reports = {}
    for mode in ("json", "text"):
        with redirect_stdout(StringIO()) as out:
            code = main([*common, "-o", str(folder / mode / "synth"), *(["--json"] if mode == "json" else [])])
        assert code == ExitCode.OK
        reports[mode] = out.getvalue()
    return folder, json.loads(reports["json"]), reports["text"]


def test_eval_card_records_the_scores_in_the_model_folder(evaluated, capsys):
    folder, report, _ = evaluated
    args = ["eval", "--model", str(folder / "model"), "--data", str(folder / "m.jsonl"), "--max-new-tokens", "3",
            "--labels", "synth", "--modalities", "audio", "-o", str(folder / "card"), "--card", "--json"]
    assert main(args) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["metrics"]["normalized"] == report["metrics"]["normalized"]
    card = ModelCard.load(folder / "model" / "README.md")
    found = {(r.dataset_name, r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}
    normalized = report["metrics"]["normalized"]
    assert found == {("synth", "m", "WAR"): normalized["war"], ("synth", "m", "UAR"): normalized["uar"]}


def test_eval_json_is_the_metrics_it_wrote(evaluated):
    folder, report, text = evaluated
    written = folder / "json" / "synth"
    assert report == {"output": str(written), "metrics": json.loads((written / "metrics.json").read_text())}
    assert report["metrics"]["normalized"]["n"] == 2
    war = report["metrics"]["normalized"]["war"]
    assert f"normalized WAR {war:.4f}" in text   # the text shows the same figures


def test_compare_json_is_the_table(evaluated, tmp_path, capsys):
    folder, report, _ = evaluated
    png = tmp_path / "t.png"
    assert main(["compare", f"tiny={folder / 'json'}", "--json", "--out", str(png)]) == ExitCode.OK
    table = _stdout_json(capsys)
    assert table["track"] == "normalized" and table["datasets"] == ["synth"] and table["png"] == str(png)
    [row] = table["rows"]
    cell = row["cells"]["synth"]
    assert row["name"] == "tiny" and cell["war"] == pytest.approx(100 * report["metrics"]["normalized"]["war"])
    assert png.stat().st_size > 1000
