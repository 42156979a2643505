"""What users watch during training: a progress bar, per-step metrics in ``metrics.jsonl`` (always) and
in the trackers of ``report_to``, and sample completions every few steps. Only the main process writes.

Trackers go through accelerate (``Accelerator.init_trackers`` / ``log``, each tracker's ``finish``): TensorBoard
(``OUT/tensorboard``), Weights & Biases, MLflow and trackio, each when its package is installed, with the
run's config as hyperparameters. TensorBoard is an extra (``pip install 'r1omni[tensorboard]'``): without
it the default ``report_to: [tensorboard]`` logs to ``metrics.jsonl`` only, with a warning; a tracker
named in ``report_to`` otherwise must be installed (:func:`check_trackers` says which package is missing
before the run opens its model).

Non-finite numbers stop the run (:class:`NonFiniteError` names the step and the metric) instead
of quietly training a NaN model.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.tracking import TensorBoardTracker
from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_trackio_available, is_wandb_available
from tqdm.auto import tqdm

from r1omni.atomic import atomic_write_text
from r1omni.schema import read_log

__all__ = ["RunTracker", "NonFiniteError", "check_finite", "TRACKERS", "check_trackers"]

logger = logging.getLogger(__name__)

# report_to's names -> (is it installed, what to install). The project name every tracker files runs under.
TRACKERS = {
    "tensorboard": (is_tensorboard_available, "pip install 'r1omni[tensorboard]'"),
    "wandb": (is_wandb_available, "pip install wandb"),
    "mlflow": (is_mlflow_available, "pip install mlflow"),
    "trackio": (is_trackio_available, "pip install trackio"),
}
PROJECT = "r1omni"


class NonFiniteError(RuntimeError):
    """A loss, reward or gradient norm became NaN or infinite."""


def check_finite(step: int, **values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"step {step}: {name} is {value}; stopping (lower the learning rate, check "
                                 "the data and rewards, or resume from the last checkpoint)")


def check_trackers(report_to: Iterable[str], warn: bool = True) -> list[str]:
    """The trackers of ``report_to`` to start: each must be installed (a ValueError names its package),
    except TensorBoard, which is left out (with a warning when ``warn``) so that a run without the extra
    still logs ``metrics.jsonl``."""
    names = []
    for name in dict.fromkeys(report_to):
        if name not in TRACKERS:
            raise ValueError(f"report_to: unknown tracker {name!r}; trackers are {sorted(TRACKERS)} ([] for none)")
        installed, install = TRACKERS[name]
        if installed():
            names.append(name)
        elif name != "tensorboard":
            raise ValueError(f"report_to names {name!r}, which is not installed: {install}, or remove it from "
                             "report_to")
        elif warn:
            logger.warning("tensorboard is not installed, so metrics go to metrics.jsonl only (%s, or set "
                           "report_to: [] to silence this)", install)
    return names


def _hyperparameters(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``config`` flat (dotted keys) with scalar values, as TensorBoard's hparams take them."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_hyperparameters(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


class RunTracker:
    """metrics.jsonl + accelerate's trackers + tqdm for one run folder.

    ``accelerator`` / ``report_to`` / ``config``: the run's Accelerator, the trackers to start
    (:func:`check_trackers` drops a missing TensorBoard) and the config logged as their hyperparameters;
    without an accelerator only ``metrics.jsonl`` is written."""

    def __init__(self, output_dir: str | Path, total_steps: int, start_step: int = 0, enabled: bool = True,
                 description: str = "train", postfix_keys: tuple[str, ...] = ("loss",),
                 accelerator: Accelerator | None = None, report_to: Iterable[str] = (),
                 config: dict[str, Any] | None = None):
        self.enabled = enabled
        self.output_dir = Path(output_dir)
        self.postfix_keys = postfix_keys
        self._accelerator = None
        self._bar = None
        self._started = time.perf_counter()
        if not enabled:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.output_dir / "metrics.jsonl"
        self.samples_path = self.output_dir / "samples.jsonl"
        self._truncate_after(self.metrics_path, start_step)
        self._truncate_after(self.samples_path, start_step)
        names = check_trackers(report_to, warn=False) if accelerator is not None else []
        if names:
            self._start_trackers(accelerator, names, start_step, config or {})
        self._bar = tqdm(total=total_steps, initial=start_step, desc=description, dynamic_ncols=True,
                         mininterval=1.0)

    def _start_trackers(self, accelerator: Accelerator, names: list[str], start_step: int,
                        config: dict[str, Any]) -> None:
        """Hand accelerate the trackers: TensorBoard as an instance, so that it writes to ``OUT/tensorboard``
        and a resumed run drops the events logged after its checkpoint (``purge_step``); the others by
        name, filed under :data:`PROJECT` as the run folder's name. (The Accelerator was built before the
        run's start step was known; ``init_trackers`` reads ``log_with`` when it is called.)"""
        run_name = self.output_dir.resolve().name
        accelerator.log_with = [TensorBoardTracker("tensorboard", str(self.output_dir), purge_step=start_step + 1)
                                if name == "tensorboard" else name for name in names]
        accelerator.init_trackers(PROJECT, config=_hyperparameters(config),
                                  init_kwargs={"wandb": {"name": run_name, "dir": str(self.output_dir)},
                                               "mlflow": {"run_name": run_name}, "trackio": {"name": run_name}})
        self._accelerator = accelerator

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
        if self._accelerator is not None:
            self._accelerator.log({name: value for name, value in metrics.items() if isinstance(value, (int, float))},
                                  step=step)
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
        # Each tracker's finish(), not Accelerator.end_training(): that also destroys the process group, which
        # the recipe still needs for its final save (a barrier) under `accelerate launch`.
        if self._accelerator is not None:
            for tracker in self._accelerator.trackers:
                tracker.finish()
        if self._bar is not None:
            self._bar.close()
