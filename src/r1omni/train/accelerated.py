"""Where a recipe meets accelerate's wrapping: the one Accelerator of a run, the bare model inside the
wrapped one (to generate and to save), and gradient clipping by global norm.

It sits below ``setup``, ``checkpoint`` and the rollout engines, which all need the bare model, so that
none of them imports another for it. It builds nothing else: the set-up sequence is ``setup.prepare_run``.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs

from r1omni.models import Policy
from r1omni.models.placement import leave_group_at_exit

__all__ = ["make_accelerator", "unwrapped", "clip_gradients"]


def make_accelerator(mixed_precision: str = "no", gradient_accumulation_steps: int = 1,
                     log_dir: str | None = None) -> Accelerator:
    """One Accelerator per run; ``accelerate launch`` decides processes, devices and DeepSpeed.

    DDP is told that some parameters may go unused in a step (a clip without audio leaves the
    audio projector out of the graph), which it otherwise treats as an error.

    The schedule is stepped once per optimiser step (``step_scheduler_with_optimizer=False``):
    r1omni counts its total steps over the global batch already, whereas accelerate's default
    steps a prepared scheduler once per process per step (it assumes per-process dataloader
    lengths), which would decay the learning rate N times too fast with N processes.

    On a machine without GPUs, two processes started by the torchrun-based launcher
    (``accelerate launch --multi_gpu``) only form a gloo group when ``ACCELERATE_USE_CPU=true``;
    otherwise each believes it is alone and all would write the same files, which is refused here.
    """
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps,
                              project_dir=log_dir, kwargs_handlers=[ddp], step_scheduler_with_optimizer=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and accelerator.num_processes == 1:
        raise RuntimeError(f"launched as {world_size} processes (WORLD_SIZE) but accelerate set up a single-process "
                           "run, so each process would train alone; without GPUs launch with ACCELERATE_USE_CPU=true "
                           "(e.g. ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N ...)")
    leave_group_at_exit()
    return accelerator


class unwrapped:
    """Context manager: inside it ``policy.module`` is the bare model (for generate and save), then
    the accelerate-wrapped one again. Under DeepSpeed ZeRO-3 the partitioned parameters are
    gathered for the duration, so generation sees whole weights."""

    def __init__(self, policy: Policy, accelerator: Accelerator) -> None:
        self.policy, self.accelerator = policy, accelerator
        self._wrapped = None
        self._gather = None

    def __enter__(self) -> Policy:
        self._wrapped = self.policy.module
        bare = self.accelerator.unwrap_model(self._wrapped)
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None and plugin.zero_stage == 3:
            import deepspeed  # only present on GPU set-ups that use DeepSpeed

            self._gather = deepspeed.zero.GatheredParameters(list(bare.parameters()))
            self._gather.__enter__()
        self.policy.module = bare
        return self.policy

    def __exit__(self, *exc) -> None:
        if self._gather is not None:
            self._gather.__exit__(*exc)
        self.policy.module = self._wrapped


def clip_gradients(accelerator: Accelerator, module: torch.nn.Module, max_norm: float) -> float | None:
    """Clip by global norm and return the norm before clipping; None when clipping is off or done
    inside the engine (DeepSpeed clips with its own ``gradient_clipping`` setting)."""
    if max_norm <= 0:
        return None
    norm = accelerator.clip_grad_norm_(module.parameters(), max_norm)
    return None if norm is None else float(norm)
