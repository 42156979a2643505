"""One answer record: a field added to ``r1omni.inference.Answer`` reaches every output without another
edit: ``predict --json``, a timeline's ``windows.jsonl``, the API (a clip's response and a timeline
window's line) and the evaluation's prediction rows."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from serve_fakes import TAUGHT_COMPLETION

import r1omni.inference
import r1omni.models
from r1omni.cli import main
from r1omni.evaluate import EvalOptions, evaluate
from r1omni.labels import get_label_set
from r1omni.schema import Sample

pytestmark = pytest.mark.anyio

NEW_FIELD, NEW_VALUE = "certainty_note", "added in a fixture"


@dataclass
class AnswerWithANewField(r1omni.inference.Answer):
    certainty_note: str = NEW_VALUE


@pytest.fixture
def answer_with_a_new_field(monkeypatch):
    """Every answer the one path parses is now an Answer with one more field."""
    monkeypatch.setattr(r1omni.inference, "Answer", AnswerWithANewField)


def _cli_lines(argv: list[str], capsys) -> list[dict]:
    capsys.readouterr()
    main(argv)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


async def test_a_field_added_to_the_answer_reaches_all_four_outputs(answer_with_a_new_field, stub_factory, serve,
                                                                    media_dir, tmp_path, monkeypatch, capsys):
    stub = stub_factory(text=TAUGHT_COMPLETION)
    monkeypatch.setattr(r1omni.models, "load_policy", lambda *args, **kwargs: stub)
    clip, recording = media_dir / "clip.mp4", media_dir / "long.wav"

    # 1. the CLI's JSON, for a file and for each window of a recording (and its windows.jsonl)
    [predicted] = _cli_lines(["predict", "--model", "m", str(clip), "--json"], capsys)
    windows = _cli_lines(["predict", "--model", "m", str(recording), "--json", "--segment", "1",
                          "-o", str(tmp_path / "timelines")], capsys)
    written_file = tmp_path / "timelines" / "long" / "windows.jsonl"
    written = [json.loads(line) for line in written_file.read_text().splitlines()]
    assert predicted[NEW_FIELD] == NEW_VALUE and predicted["label"] == "angry"
    assert len(windows) == len(written) == 3
    assert {row[NEW_FIELD] for row in windows + written} == {NEW_VALUE}

    # 2. the API: a clip's response and each window line of a timeline
    async with serve(stub) as (client, _):
        with open(clip, "rb") as handle:
            response = await client.post("/v1/predict", files={"file": ("clip.mp4", handle)})
        with open(recording, "rb") as handle:
            stream = await client.post("/v1/timeline?segment_seconds=1", files={"file": ("long.wav", handle)})
    assert response.status_code == 200 and response.json()[NEW_FIELD] == NEW_VALUE
    lines = [json.loads(line) for line in stream.text.splitlines()]
    assert [line[NEW_FIELD] for line in lines if line["type"] == "window"] == [NEW_VALUE] * 3

    # 3. the evaluation's prediction rows
    labels = get_label_set("synth")
    evaluate(stub, [Sample(id="clip", corpus="files", video=str(clip), label=labels.labels[0])], tmp_path / "eval",
             labels, EvalOptions(batch_size=2, max_new_tokens=8))
    [row] = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert row[NEW_FIELD] == NEW_VALUE and row["pred"] == "angry"


def test_the_api_schema_declares_every_answer_field():
    """The API lets an undeclared Answer field through (the test above), but documents each one: every field
    of Answer.to_dict is declared on the models a clip's response and a window line share, claims as the
    per-clause ``reasoning``."""
    from dataclasses import fields

    from r1omni.serve.schemas import AnswerFields

    shown = {f.name for f in fields(r1omni.inference.Answer)} - {"timings", "claims"} | {"reasoning"}
    assert shown == set(AnswerFields.model_fields)
