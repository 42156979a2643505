"""What every recipe does before its loop: the accelerator, the policy, which parts train, the
optimiser and its schedule, and a frozen reference that shares memory with the policy.

Scaling goes through accelerate (``accelerate launch``: data-parallel processes, mixed precision,
gradient accumulation, DeepSpeed ZeRO through accelerate's plugin); r1omni adds no distributed
layer of its own.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs

from r1omni.models import Policy, init_preset, load_policy
from r1omni.models.policy import MODEL_PARTS

__all__ = ["OptimConfig", "PAPER_TRAINABLE_PARTS", "make_accelerator", "open_policy", "set_trainable_parts",
           "build_optimizer", "frozen_reference", "seed_everything", "PRESET_PREFIX", "unwrapped",
           "clip_gradients", "check_step_settings"]

logger = logging.getLogger(__name__)

# The paper's SFT choice (mm_tunable_parts "mm_mlp_adapter,audio_projector,mm_language_model"):
# the LLM, both projectors and the gate train; towers and the gate's text encoder stay frozen.
PAPER_TRAINABLE_PARTS = ("llm", "vision_projector", "audio_projector", "gate")
PRESET_PREFIX = "preset:"


@dataclass
class OptimConfig:
    """Optimiser and schedule (AdamW)."""

    lr: float = 2e-5
    """Peak learning rate."""
    weight_decay: float = 0.0
    schedule: str = "cosine"
    """"cosine", "linear" (decay to 0) or "constant", each after the warm-up."""
    warmup_ratio: float = 0.03
    """Share of the optimiser steps spent warming up linearly from 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm; 0 disables it."""
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    """Per-part learning-rate factors (keys from ``MODEL_PARTS``), like the official
    ``mm_projector_lr``: e.g. ``{vision_projector: 0.1}`` trains the projector at a tenth of lr."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.lr_multipliers) - set(MODEL_PARTS))
        if unknown:
            raise ValueError(f"lr_multipliers has unknown part(s) {unknown}; parts are {list(MODEL_PARTS)}")
        if any(not 0 < v < math.inf for v in self.lr_multipliers.values()):
            raise ValueError(f"lr_multipliers must be finite and > 0, got {self.lr_multipliers}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        for name in ("weight_decay", "max_grad_norm"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"schedule must be cosine, linear or constant, got {self.schedule!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


def check_step_settings(max_steps: int | None, epochs: float, log_every: int, save_every: int, sample_every: int,
                        snapshot_steps: list[int]) -> None:
    """The step counts SFT and GRPO share, checked in their configs' ``__post_init__``: a negative one
    would train no step (``max_steps=-5``) or save at every step (``step % -1 == 0``) without a word."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}; leave it unset to train for `epochs` instead")
    if max_steps is None and epochs <= 0:
        raise ValueError("set epochs > 0 or max_steps")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1 (1 logs every step), got {log_every}")
    if save_every < 0:
        raise ValueError(f"save_every must be >= 0 (0 saves only the final model), got {save_every}")
    if sample_every < 0:
        raise ValueError(f"sample_every must be >= 0 (0 logs no samples), got {sample_every}")
    if any(step < 1 for step in snapshot_steps):
        raise ValueError(f"snapshot_steps must be steps >= 1, got {snapshot_steps}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    return accelerator


def open_policy(model: str, seed: int = 0) -> Policy:
    """A saved model folder, or ``preset:NAME`` for a randomly initialised preset."""
    if model.startswith(PRESET_PREFIX):
        return init_preset(model[len(PRESET_PREFIX):], seed=seed)
    return load_policy(model)


def set_trainable_parts(policy: Policy, trainable: list[str] | tuple[str, ...] | None) -> dict[str, int]:
    """Freeze everything, then unfreeze the named parts. Returns trainable parameter counts per part.

    ``None`` means the paper's choice (:data:`PAPER_TRAINABLE_PARTS`) restricted to the parts this
    family has. A part named explicitly that the family lacks is an error, not silently skipped.
    """
    parts = policy.parts()
    if trainable is None:
        names = [name for name in PAPER_TRAINABLE_PARTS if name in parts]
    else:
        unknown = sorted(set(trainable) - set(MODEL_PARTS))
        if unknown:
            raise ValueError(f"unknown model part(s) {unknown}; parts are {list(MODEL_PARTS)}")
        missing = sorted(set(trainable) - set(parts))
        if missing:
            raise ValueError(f"the {policy.family} model has no part(s) {missing}; it has {sorted(parts)}")
        names = list(trainable)
    policy.module.requires_grad_(False)
    counts = {}
    for name in names:
        params = [p for module in parts[name] for p in module.parameters()]
        for p in params:
            p.requires_grad_(True)
        counts[name] = sum(p.numel() for p in params)
    if not any(p.requires_grad for p in policy.module.parameters()):
        raise ValueError(f"no parameter is trainable with parts {names}")
    return counts


def build_optimizer(policy: Policy, config: OptimConfig, total_steps: int):
    """AdamW over the trainable parameters (one group per learning-rate multiplier) and its schedule."""
    factor_of: dict[int, float] = {}
    parts = policy.parts()
    for part, factor in config.lr_multipliers.items():
        for module in parts.get(part, []):
            for param in module.parameters():
                factor_of[id(param)] = factor
    groups: dict[float, list] = {1.0: []}   # the base group first: recipes log group 0's rate
    for param in policy.module.parameters():
        if param.requires_grad:
            groups.setdefault(factor_of.get(id(param), 1.0), []).append(param)
    optimizer = torch.optim.AdamW([{"params": params, "lr": config.lr * factor}
                                   for factor, params in groups.items() if params],
                                  lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(round(config.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if config.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if config.schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler


def frozen_reference(policy: Policy, model: str, seed: int = 0, share_frozen: bool = True) -> Policy:
    """The reference policy for the KL term: the initial weights, frozen, in eval mode.

    With ``share_frozen`` every parameter the policy does not train is *shared* with the policy
    (same storage), so frozen towers and encoders are held once, not twice. Under DeepSpeed ZeRO-3
    the policy's parameters are partitioned, so call this before ``accelerator.prepare`` or with
    ``share_frozen=False``.
    """
    reference = open_policy(model, seed=seed)
    reference.module.requires_grad_(False).eval()
    if share_frozen:
        policy_params = dict(policy.module.named_parameters())
        shared = 0
        for name, param in reference.module.named_parameters():
            source = policy_params.get(name)
            if source is not None and not source.requires_grad and source.shape == param.shape:
                param.data = source.data
                shared += param.numel()
        logger.info("reference shares %.2fM frozen parameters with the policy", shared / 1e6)
    return reference


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
