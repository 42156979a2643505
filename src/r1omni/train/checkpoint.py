"""Checkpoints that resume exactly and can never be half-written.

A checkpoint folder ``OUT/checkpoints/step-NNNNNNN/`` holds accelerate's state (model, optimiser,
scheduler, every process's RNG states: ``accelerator.save_state``, which also handles DeepSpeed),
r1omni's ``state.json`` (step, data position, config) and ``model/``, the policy saved in the
format :func:`r1omni.models.load_policy` reads. It is written under a temporary name and renamed
into place with a ``COMPLETE`` marker, so a killed write leaves only a ``.tmp`` folder that
:func:`latest_checkpoint` ignores.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from r1omni.atomic import COMPLETE_MARKER, atomic_dir, atomic_write_text, is_complete
from r1omni.models import Policy
from r1omni.train.setup import unwrapped

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "save_final", "save_snapshot", "TrainResult",
           "CHECKPOINT_DIR", "SNAPSHOT_DIR"]

CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"


def _step_dir(output_dir: Path, step: int) -> Path:
    return output_dir / CHECKPOINT_DIR / f"step-{step:07d}"


def save_checkpoint(accelerator: Accelerator, policy: Policy, output_dir: str | os.PathLike, step: int,
                    state: dict[str, Any], keep_last: int = 2) -> Path:
    """Save everything needed to resume at ``step``; all processes must call it."""
    output_dir = Path(output_dir)
    final = _step_dir(output_dir, step)
    tmp = final.with_name(f".{final.name}.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        with unwrapped(policy, accelerator):
            policy.save(tmp / "model")
        atomic_write_text(tmp / "state.json", json.dumps({"step": step, **state}, indent=2))
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        completed = sorted(p for p in final.parent.glob("step-*") if is_complete(p))
        for old in completed[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    complete = sorted(p for p in folder.glob("step-*") if is_complete(p))
    return complete[-1] if complete else None


def load_checkpoint(accelerator: Accelerator, path: str | os.PathLike) -> dict[str, Any]:
    """Restore model, optimiser, scheduler and RNG states; return r1omni's ``state.json``."""
    path = Path(path)
    if not is_complete(path):
        raise ValueError(f"{path}: not a complete checkpoint (no {COMPLETE_MARKER} marker)")
    accelerator.load_state(str(path))
    return json.loads((path / "state.json").read_text())


@dataclass
class TrainResult:
    """What a recipe (SFT, GRPO) returns: where its final model is and the budget it spent."""

    output_dir: Path
    final_model: Path
    steps: int
    clip_views: int
    """Clips seen in total (steps × global batch): the budget each row of a comparison reports."""
    wall_seconds: float
    skipped_clips: int
    generated_tokens: int = 0
    """Completion tokens sampled during training (GRPO's rollouts, this process's; 0 for SFT)."""


def _save_model(accelerator: Accelerator, policy: Policy, folder: Path) -> Path:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with unwrapped(policy, accelerator), atomic_dir(folder) as tmp:
            policy.save(tmp)
    accelerator.wait_for_everyone()
    return folder


def save_final(accelerator: Accelerator, policy: Policy, output_dir: str | os.PathLike) -> Path:
    """Write the trained policy to ``OUT/final`` atomically (main process); all processes call it."""
    return _save_model(accelerator, policy, Path(output_dir) / "final")


def save_snapshot(accelerator: Accelerator, policy: Policy, output_dir: str | os.PathLike, step: int) -> Path:
    """The policy after ``step`` in ``OUT/snapshots/step-NNNNNNN`` (a model folder, no optimiser state):
    one run then yields the models of several budgets. All processes call it."""
    return _save_model(accelerator, policy, Path(output_dir) / SNAPSHOT_DIR / f"step-{step:07d}")
