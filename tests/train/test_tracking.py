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
    return RunTracker(output_dir, total_steps=10, start_step=start_step)


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


def tracked_run(output_dir, report_to, start_step: int = 0, steps=(1, 2, 3)) -> None:
    from r1omni.train.accelerated import make_accelerator

    run = RunTracker(output_dir, total_steps=10, start_step=start_step, accelerator=make_accelerator(),
                     report_to=report_to, config={"seed": 3, "optim": {"lr": 0.1}, "trainable": None})
    for step in steps:
        run.log(step, {"loss": 1.0 / step, "lr": 0.1})
    run.close()


def scalars(folder, tag: str) -> list[tuple[int, float]]:
    """Every (step, value) of ``tag`` in the TensorBoard event files under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = []
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            found += [(event.step, event.value) for event in accumulator.Scalars(tag)]
    return found


def test_tensorboard_through_accelerate_gets_every_logged_metric(tmp_path):
    pytest.importorskip("tensorboard")
    tracked_run(tmp_path, ["tensorboard"])
    assert scalars(tmp_path / "tensorboard", "loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_no_tracker_still_writes_metrics_jsonl(tmp_path):
    tracked_run(tmp_path, [])
    assert not (tmp_path / "tensorboard").exists()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_without_tensorboard_installed_the_default_logs_metrics_jsonl_only(tmp_path, monkeypatch, caplog):
    from r1omni.train import tracking

    monkeypatch.setitem(tracking.TRACKERS, "tensorboard", (lambda: False, "pip install 'r1omni[tensorboard]'"))
    with caplog.at_level(logging.WARNING):
        assert tracking.check_trackers(["tensorboard"]) == []
    assert "tensorboard is not installed, so metrics go to metrics.jsonl only (pip install 'r1omni[tensorboard]'" \
        in caplog.text
    tracked_run(tmp_path, ["tensorboard"])
    assert not (tmp_path / "tensorboard").exists()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_a_named_tracker_that_is_not_installed_is_refused_with_its_package(monkeypatch):
    from r1omni.train import tracking

    for name in ("wandb", "mlflow", "trackio"):
        monkeypatch.setitem(tracking.TRACKERS, name, (lambda: False, tracking.TRACKERS[name][1]))
        with pytest.raises(ValueError, match=rf"report_to names '{name}', which is not installed: pip install {name}, "
                                             "or remove it from report_to"):
            tracking.check_trackers(["tensorboard", name])


def test_an_unknown_tracker_is_refused_by_the_config():
    from r1omni.train.sft import SFTConfig

    with pytest.raises(ValueError, match=r"report_to has unknown tracker\(s\) \['comet'\]; trackers are \['mlflow', "
                                         r"'tensorboard', 'trackio', 'wandb'\] \(\[\] for none\)"):
        SFTConfig(model="m", data="d", output_dir="o", report_to=["tensorboard", "comet"])
