"""Progress bars over the demo's long stages (greedy evaluation, attribution, the study's evaluations):
one bar per stage, fed by the ``progress(done, total)`` callbacks that ``evaluate`` and ``attribute``
already call for their own clips.

A bar shows only on a terminal (tqdm's ``disable=None``) and never when the caller asks for none
(``run_demo(..., progress=False)``, ``r1omni demo --quiet``), so logs and tests stay clean. Not here: what the
stages compute, or the demo's printed lines (``say``).
"""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

__all__ = ["StageBar"]


class StageBar:
    """One bar over a stage made of several calls (a model × a split each); :meth:`part` gives each call
    its callback, whose counts start where the previous call's ended. Use it as a context manager, so
    the bar is closed however the stage ends."""

    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        self.bar = tqdm(total=total, desc=description, unit="clip", dynamic_ncols=True, mininterval=1.0,
                        disable=None if enabled else True)

    def part(self) -> Callable[[int, int], None]:
        """The ``progress(done, total)`` callback of the next call."""
        start = self.bar.n

        def progress(done: int, total: int) -> None:
            self.bar.update(start + done - self.bar.n)

        return progress

    def __enter__(self) -> "StageBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
