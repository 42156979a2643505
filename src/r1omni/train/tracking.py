"""What users watch during training: a progress bar, per-step metrics in JSONL and TensorBoard,
and sample completions every few steps. Only the main process writes.

Non-finite numbers stop the run (:class:`NonFiniteError` names the step and the metric) instead
of quietly training a NaN model.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from r1omni.atomic import atomic_write_text
from r1omni.schema import read_log

__all__ = ["RunTracker", "NonFiniteError", "check_finite"]


class NonFiniteError(RuntimeError):
    """A loss, reward or gradient norm became NaN or infinite."""


def check_finite(step: int, **values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"step {step}: {name} is {value}; stopping (lower the learning rate, check "
                                 "the data and rewards, or resume from the last checkpoint)")


class RunTracker:
    """metrics.jsonl + TensorBoard + tqdm for one run folder."""

    def __init__(self, output_dir: str | Path, total_steps: int, start_step: int = 0, enabled: bool = True,
                 description: str = "train", tensorboard: bool = True, postfix_keys: tuple[str, ...] = ("loss",)):
        self.enabled = enabled
        self.output_dir = Path(output_dir)
        self.postfix_keys = postfix_keys
        self._writer = None
        self._bar = None
        self._started = time.perf_counter()
        if not enabled:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.output_dir / "metrics.jsonl"
        self.samples_path = self.output_dir / "samples.jsonl"
        self._truncate_after(self.metrics_path, start_step)
        self._truncate_after(self.samples_path, start_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"), purge_step=start_step + 1)
        self._bar = tqdm(total=total_steps, initial=start_step, desc=description, dynamic_ncols=True,
                         mininterval=1.0)

    @staticmethod
    def _truncate_after(path: Path, step: int) -> None:
        """On resume, drop rows logged after the checkpoint (they will be logged again), and a last line
        cut by an interrupted write (:func:`r1omni.schema.read_log`)."""
        if not path.exists():
            return
        kept = [row for row in read_log(path) if row.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "elapsed_seconds": round(time.perf_counter() - self._started, 3), **metrics}
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(name, value, step)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix({k: f"{metrics[k]:.3g}" for k in self.postfix_keys if k in metrics})

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        with open(self.samples_path, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._bar is not None:
            self._bar.close()
