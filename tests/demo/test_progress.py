"""The demo's stage bars (``r1omni.demo.progress``): the calls of a stage add up on one bar, and a bar
shows only on a terminal and never when progress is switched off."""

from __future__ import annotations

import io
import sys

from r1omni.demo import progress


def test_the_parts_of_a_stage_add_up_on_one_bar(monkeypatch):
    shown = io.StringIO()
    real = progress.tqdm
    monkeypatch.setattr(progress, "tqdm", lambda **kwargs: real(**{**kwargs, "disable": False, "file": shown,
                                                                   "mininterval": 0}))
    with progress.StageBar(5, "evaluation") as bar:
        first = bar.part()
        for done in (1, 3, 3):            # a call may report the same count twice
            first(done, 3)
        second = bar.part()
        for done in (2, 2):
            second(done, 2)
        assert bar.bar.n == 5
    assert "evaluation" in shown.getvalue() and "5/5" in shown.getvalue()


def test_a_bar_shows_on_a_terminal_only_and_never_when_switched_off():
    with progress.StageBar(3, "attribution") as on, progress.StageBar(3, "attribution", enabled=False) as off:
        on.part()(2, 3)
        off.part()(2, 3)
        assert on.bar.disable == (not sys.stderr.isatty())
        assert off.bar.disable
