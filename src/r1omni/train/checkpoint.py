"""Checkpoints that resume exactly and can never be half-written.

A checkpoint folder ``OUT/checkpoints/step-NNNNNNN/`` holds accelerate's state (model, optimiser,
scheduler, every process's RNG states: ``accelerator.save_state``, which also handles DeepSpeed),
r1omni's ``state.json`` (step, data position, config, and the size of every file, so that a resume
passes over a checkpoint damaged since) and ``model/``, the policy saved in the
format :func:`r1omni.models.load_policy` reads. It is written under a temporary name and renamed
into place with a ``COMPLETE`` marker, so a killed write leaves only a ``.tmp`` folder that
:func:`latest_checkpoint` ignores.

A run folder holds one run. Every ``state.json`` carries the config it was trained with and its
digest (:func:`run_digest`, over the fields that decide the result), and
:func:`prepare_run_folder` is every recipe's gate before training: a new run refuses a folder that
holds checkpoints (continue them with ``resume``, delete them with ``overwrite``, or choose another
folder), and a resume refuses a checkpoint of another config, naming the fields that differ. Mixed
folders are refused rather than kept apart because ``final/`` and the logs have one place per
folder, so two runs in one folder would overwrite each other's results anyway. Keeping the last N
checkpoints counts only the current run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from r1omni.atomic import (
    COMPLETE_MARKER,
    atomic_dir,
    atomic_write_text,
    is_complete,
    remove_stale_temporaries,
    system_write_error,
)
from r1omni.models import Policy
from r1omni.models.lora import save_policy
from r1omni.models.card import CardInfo, file_digest
from r1omni.models.policy import recorded_sampling
from r1omni.provenance import CONFIG_FILE, ENVIRONMENT_FILE
from r1omni.train.accelerated import unwrapped
from r1omni.yamlconfig import config_differences

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "save_final", "save_snapshot", "TrainResult",
           "CHECKPOINT_DIR", "SNAPSHOT_DIR", "RUN_INDEPENDENT_FIELDS", "run_digest", "prepare_run_folder",
           "training_card"]

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"
# What a run writes into its folder; ``overwrite`` deletes exactly these.
RUN_OUTPUTS = (CHECKPOINT_DIR, SNAPSHOT_DIR, "final", "tensorboard", "metrics.jsonl", "samples.jsonl", CONFIG_FILE,
               ENVIRONMENT_FILE)

# Config fields that decide where, when and how fast a run writes and computes, not which weights it
# ends with: a checkpoint saved under one value resumes exactly under another (more threads, a
# different save_every after a crash, the folder moved). Every other field is the run's identity,
# max_steps and epochs included: they set the length of the learning-rate schedule (cosine or
# linear decay over the total steps), so step 50 of a 100-step run is not step 50 of a 200-step run,
# and "extending" a run by resuming it with more steps would train neither run.
RUN_INDEPENDENT_FIELDS = frozenset({"output_dir", "resume", "overwrite", "num_threads", "log_every", "sample_every",
                                    "save_every", "snapshot_steps", "cache_media", "gradient_checkpointing",
                                    "report_to"})


def _run_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a config (``config_to_dict``) that decide the run's result, as JSON would store them;
    sampling settings in today's fields (a run saved with ``decoder: fast`` resumes under today's loop)."""
    identity = {k: v for k, v in config.items() if k not in RUN_INDEPENDENT_FIELDS}
    if isinstance(identity.get("sampling"), dict):
        identity["sampling"] = recorded_sampling(identity["sampling"])
    return json.loads(json.dumps(identity, default=str))


def run_digest(config: dict[str, Any]) -> str:
    """A short digest of the run's identity: equal for configs that train the same run."""
    text = json.dumps(_run_identity(config), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field stored -> current`` for each identity field (dotted) that differs."""
    return config_differences(_run_identity(stored), _run_identity(current))


def _step_dir(output_dir: Path, step: int) -> Path:
    return output_dir / CHECKPOINT_DIR / f"step-{step:07d}"


def _complete_checkpoints(output_dir: Path) -> list[Path]:
    """Finished checkpoint folders of a run folder, oldest first."""
    folder = output_dir / CHECKPOINT_DIR
    return sorted(p for p in folder.glob("step-*") if is_complete(p)) if folder.is_dir() else []


def _read_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's ``state.json``; a ValueError naming the file when it is missing or damaged."""
    path = checkpoint / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the checkpoint's state ({err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path}: no 'config' in the checkpoint's state, so it cannot be matched to a run")
    return state


def _file_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def _damage(checkpoint: Path) -> str | None:
    """Why a complete checkpoint cannot be resumed from (its state unreadable, a file deleted or cut, as a
    full disk or a hand leaves it), or None. Sizes are compared with those recorded when it was saved;
    a checkpoint saved before sizes were recorded is checked for its state only."""
    try:
        recorded = _read_state(checkpoint).get("files", {})
    except ValueError as err:
        return str(err)
    for name, size in recorded.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{path}: missing"
        if path.stat().st_size != size:
            return f"{path}: {path.stat().st_size} bytes, {size} when saved"
    return None


def _belongs_to(checkpoint: Path, config: dict[str, Any]) -> bool:
    try:
        return not _differences(_read_state(checkpoint)["config"], config)
    except ValueError:
        return False


def save_checkpoint(accelerator: Accelerator, policy: Policy, output_dir: str | os.PathLike, step: int,
                    config: dict[str, Any], state: dict[str, Any], keep_last: int = 2, merge: bool = False) -> Path:
    """Save everything needed to resume at ``step``; all processes must call it. ``config`` is the run's
    (``config_to_dict``), stored with its digest; of the checkpoints of this run only the newest
    ``keep_last`` are kept, and those of any other run are never touched. ``merge``: the ``model/``
    folder holds LoRA adapters merged into the weights (:func:`r1omni.models.lora.save_policy`)."""
    output_dir = Path(output_dir)
    final = _step_dir(output_dir, step)
    tmp = final.with_name(f".{final.name}.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
    except Exception as err:  # torch reports a full disk as a RuntimeError naming no file
        if (named := system_write_error(err, tmp)) is not None:
            raise named from err
        raise
    accelerator.wait_for_everyone()     # every process's files are written before they are listed
    if accelerator.is_main_process:
        with unwrapped(policy, accelerator):
            save_policy(policy, tmp / "model", merge=merge)
        record = {"step": step, "run_digest": run_digest(config), "config": config, "files": _file_sizes(tmp),
                  **state}
        atomic_write_text(tmp / "state.json", json.dumps(record, indent=2, default=str))
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        own = [p for p in _complete_checkpoints(output_dir) if _belongs_to(p, config)]
        for old in own[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    complete = _complete_checkpoints(Path(output_dir))
    return complete[-1] if complete else None


def prepare_run_folder(accelerator: Accelerator, output_dir: str | os.PathLike, config: dict[str, Any],
                       resume: bool, overwrite: bool) -> Path | None:
    """The gate before training (all processes call it): the checkpoint to resume from, or None to
    start at step 0.

    Temporary folders that killed saves left behind are removed (main process) once the run may go on.
    ``overwrite`` deletes what an earlier run wrote (:data:`RUN_OUTPUTS`) and starts over. Otherwise a
    folder holding checkpoints is refused to a new run (its keep-last would delete the old run's, or
    the old run's higher steps would outlive its own), and a resume takes the newest intact checkpoint
    (a damaged one is passed over with a warning naming it), refused if its config differs from this
    one in a field that decides the result (the message lists them).
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {output_dir} is a file; give a folder (it holds the run's checkpoints, "
                         "metrics and final model)")
    checkpoint = None if overwrite else _checkpoint_to_resume(output_dir, config, resume)
    if accelerator.is_main_process:
        if overwrite:
            _delete_run_outputs(output_dir)
        _remove_killed_writes(output_dir)
    accelerator.wait_for_everyone()
    return checkpoint


def _checkpoint_to_resume(output_dir: Path, config: dict[str, Any], resume: bool) -> Path | None:
    newest = latest_checkpoint(output_dir)
    if newest is None:
        return None
    if not resume:
        raise ValueError(f"{output_dir} already holds a run's checkpoints (newest: {newest.name}); pass resume=true "
                         "to continue that run, overwrite=true to delete it and start over, or choose another "
                         "output_dir")
    return _newest_intact(output_dir, config)


def _remove_killed_writes(output_dir: Path) -> None:
    """Temporary folders of saves that were killed (``final``, checkpoints, snapshots), never reused."""
    for folder, name_glob in ((output_dir, "final"), (output_dir / CHECKPOINT_DIR, "step-*"),
                              (output_dir / SNAPSHOT_DIR, "step-*")):
        for path in remove_stale_temporaries(folder, name_glob):
            logger.warning("removed %s, left by a save that was killed", path)


def _newest_intact(output_dir: Path, config: dict[str, Any]) -> Path:
    """The checkpoint a resume loads: the newest one that is intact, if it belongs to this run."""
    damaged = []
    for checkpoint in reversed(_complete_checkpoints(output_dir)):
        if (problem := _damage(checkpoint)) is not None:
            logger.warning("%s is damaged (%s); trying the checkpoint before it", checkpoint, problem)
            damaged.append(problem)
            continue
        differences = _differences(_read_state(checkpoint)["config"], config)
        if differences:
            raise ValueError(f"{checkpoint} belongs to another run; its config differs from this one in "
                             f"{'; '.join(differences)} (checkpoint -> now). Resume with the checkpoint's settings, "
                             "pass overwrite=true to delete that run and start over, or choose another output_dir")
        return checkpoint
    raise ValueError(f"{output_dir}: no intact checkpoint to resume from ({'; '.join(damaged)}); pass overwrite=true "
                     "to start over")


def _delete_run_outputs(output_dir: Path) -> None:
    for name in RUN_OUTPUTS:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    logger.info("overwrite: deleted the earlier run's outputs in %s", output_dir)


def load_checkpoint(accelerator: Accelerator, path: str | os.PathLike) -> dict[str, Any]:
    """Restore model, optimiser, scheduler and RNG states; return r1omni's ``state.json``."""
    path = Path(path)
    if not is_complete(path):
        raise ValueError(f"{path}: not a complete checkpoint (no {COMPLETE_MARKER} marker)")
    state = _read_state(path)
    accelerator.load_state(str(path))
    return state


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


def training_card(config: Any, recipe: str, steps: int) -> CardInfo:
    """The model card's facts of a recipe's model after ``steps``: where it started, the recipe, its
    training manifest and that file's digest."""
    return CardInfo(base_model=config.model, recipe=recipe, data=config.data, data_digest=file_digest(config.data),
                    steps=steps)


def _save_model(accelerator: Accelerator, policy: Policy, folder: Path, merge: bool, card: CardInfo | None) -> Path:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with unwrapped(policy, accelerator), atomic_dir(folder) as tmp:
            save_policy(policy, tmp, merge=merge, card=card)
    accelerator.wait_for_everyone()
    return folder


def save_final(accelerator: Accelerator, policy: Policy, output_dir: str | os.PathLike, merge: bool = False,
               card: CardInfo | None = None) -> Path:
    """Write the trained policy to ``OUT/final`` atomically (main process), with its model card (``card``:
    :func:`training_card`); all processes call it. ``merge``: LoRA adapters merged into the weights
    (:func:`r1omni.models.lora.save_policy`)."""
    return _save_model(accelerator, policy, Path(output_dir) / "final", merge, card)


def save_snapshot(accelerator: Accelerator, policy: Policy, output_dir: str | os.PathLike, step: int,
                  merge: bool = False, card: CardInfo | None = None) -> Path:
    """The policy after ``step`` in ``OUT/snapshots/step-NNNNNNN`` (a model folder with its card, no optimiser
    state): one run then yields the models of several budgets. All processes call it."""
    return _save_model(accelerator, policy, Path(output_dir) / SNAPSHOT_DIR / f"step-{step:07d}", merge, card)
