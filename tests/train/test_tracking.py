"""The run's logs (``r1omni.train.tracking``): a last line cut by a full disk or a kill never blocks a
resume, and damage anywhere else is reported with the file and line."""

from __future__ import annotations

import json
import logging

import pytest

from r1omni.schema import ManifestError
from r1omni.train.tracking import RunTracker

ROWS = "".join(json.dumps({"step": step, "loss": 1.0 / step}) + "\n" for step in (1, 2, 3))


def tracker(output_dir, start_step: int) -> RunTracker:
    return RunTracker(output_dir, total_steps=10, start_step=start_step, tensorboard=False)


def test_a_torn_last_line_is_dropped_with_a_warning_naming_it(tmp_path, caplog):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(ROWS + '{"step": 4, "elapsed_seconds": 1')      # the disk filled up mid-line
    with caplog.at_level(logging.WARNING):
        run = tracker(tmp_path, start_step=3)
    assert f"{metrics}:4: dropping a torn last line" in caplog.text
    run.log(4, {"loss": 0.25})
    run.close()
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_damaged_line_before_the_last_names_the_file_and_line(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ManifestError, match=r"metrics.jsonl:2: not valid JSON .* repair or delete that line"):
        tracker(tmp_path, start_step=3)
