"""What every recipe does before its loop, written once: the run's settings (:class:`RunSettings`),
and :func:`prepare_run`, which opens the run folder, seeds, opens the policy and sets which parts
train, loads the samples' clips, orders the data, builds the optimiser and its schedule, hands them to
accelerate and resumes. The builders it calls (``open_policy``, ``set_trainable_parts``,
``build_optimizer``, ``frozen_reference``) stay public for recipes and tests of their own.

Scaling goes through accelerate (``accelerate launch``: data-parallel processes, mixed precision,
gradient accumulation, DeepSpeed ZeRO through accelerate's plugin); r1omni adds no distributed
layer of its own (``r1omni.train.accelerated``). Functions, not a trainer base class: a recipe
(``sft``, ``grpo``) calls ``prepare_run`` and then reads top to bottom.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from transformers import get_scheduler

from r1omni.clips import ClipLoader, MediaCache
from r1omni.models import ClipInput, Policy, PreparedBatch, init_preset, load_policy
from r1omni.models.decoding import evaluating
from r1omni.models.lora import LoraSettings, adapter_layers, adapters_disabled, add_adapters
from r1omni.models.policy import MODEL_PARTS
from r1omni.provenance import write_run_record
from r1omni.schema import Sample, read_samples
from r1omni.train.accelerated import clip_gradients, make_accelerator, unwrapped
from r1omni.train.checkpoint import load_checkpoint, prepare_run_folder
from r1omni.train.data import StepOrder
from r1omni.train.tracking import TRACKERS, check_trackers
from r1omni.yamlconfig import config_to_dict

__all__ = ["RunSettings", "Run", "prepare_run", "micro_batch", "OptimConfig", "PAPER_TRAINABLE_PARTS",
           "open_policy", "set_trainable_parts", "build_optimizer", "frozen_reference", "seed_everything",
           "PRESET_PREFIX", "check_step_settings", "AdaptersOff", "enable_gradient_checkpointing",
           "warmup_steps", "plain_update",
           # accelerate's pieces, re-exported for callers that import them from here
           "make_accelerator", "unwrapped", "clip_gradients"]

logger = logging.getLogger(__name__)

# The paper's SFT choice (mm_tunable_parts "mm_mlp_adapter,audio_projector,mm_language_model"):
# the LLM, both projectors and the gate train; towers and the gate's text encoder stay frozen.
PAPER_TRAINABLE_PARTS = ("llm", "vision_projector", "audio_projector", "gate")
PRESET_PREFIX = "preset:"
# OptimConfig.schedule -> transformers' scheduler name (each warms up first).
_SCHEDULER_NAMES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class OptimConfig:
    """Optimiser and schedule (AdamW)."""

    lr: float = 2e-5
    """Peak learning rate."""
    weight_decay: float = 0.0
    schedule: str = "cosine"
    """"cosine", "linear" (decay to 0) or "constant", each after the warm-up."""
    warmup_ratio: float = 0.03
    """Share of the optimiser steps spent warming up linearly from 0 (rounded up to whole steps, as the HF
    Trainer does: :func:`warmup_steps`)."""
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


@dataclass(kw_only=True)
class RunSettings:
    """How a run is driven, the same in every recipe: precision, seed, media cache, how often it logs,
    samples and saves, resuming, threads. ``SFTConfig`` and ``GRPOConfig`` inherit these fields, so their
    YAML keys and ``key=value`` overrides stay flat (``seed: 3``, ``save_every=50``) and each is documented
    here once. (Keyword-only, so that a recipe's own required fields, ``model``, ``data``, ``output_dir``,
    may follow these defaults.) Which of them decide a run's result, and so must match on resume:
    ``r1omni.train.checkpoint.RUN_INDEPENDENT_FIELDS`` lists the ones that do not.
    """

    mixed_precision: str = "no"
    """accelerate's mixed precision: no, bf16 or fp16 (GPU)."""
    seed: int = 42
    """Seeds the preset's random weights, the data order and the run's random draws (see :func:`prepare_run`)."""
    cache_media: bool = True
    """Keep decoded clips in memory (right for small sets; turn off for large corpora)."""
    log_every: int = 1
    """Write the metrics row every N steps (and after the last step)."""
    sample_every: int = 0
    """Every N steps log sample completions (0 = never): SFT a greedy completion of the batch's first clip
    beside its target, GRPO one group's completions with their rewards."""
    save_every: int = 0
    """Checkpoint every N steps (0 = only the final model); the newest two checkpoints are kept."""
    snapshot_steps: list[int] = field(default_factory=list)
    """Also save the model after these steps (``OUT/snapshots/``), e.g. for a budget curve from one run."""
    resume: bool = False
    """Continue from the newest complete checkpoint in output_dir (refused if another config wrote it)."""
    overwrite: bool = False
    """Start over in an output_dir that holds an earlier run, deleting its checkpoints, model and logs."""
    num_threads: int | None = None
    """torch CPU threads (None = leave torch's default)."""
    lora: LoraSettings | None = None
    """LoRA adapters on the language model (``lora: {r: 16, alpha: 32}``; :mod:`r1omni.models.lora`) instead of
    training its weights; None, the paper's full fine-tuning. The language model's own weights freeze, the
    other trainable parts (projectors, gate) still train whole, and GRPO's reference is the policy with its
    adapters off. Saved models hold the base plus the adapter, or the merged weights with ``lora.merge``."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass (transformers' gradient
    checkpointing): less memory for long completions, about a third more compute; the same numbers."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Trackers that receive the logged metrics and the config, through accelerate: ``tensorboard``
    (``OUT/tensorboard``), ``wandb``, ``mlflow``, ``trackio``; [] for none. ``metrics.jsonl`` is written
    whatever this says. A named tracker must be installed, except tensorboard, which is skipped with a
    warning (``r1omni.train.tracking``)."""

    def __post_init__(self) -> None:
        # A negative count would save at every step (``step % -1 == 0``) or never log, without a word.
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1 (1 logs every step), got {self.log_every}")
        if self.save_every < 0:
            raise ValueError(f"save_every must be >= 0 (0 saves only the final model), got {self.save_every}")
        if self.sample_every < 0:
            raise ValueError(f"sample_every must be >= 0 (0 logs no samples), got {self.sample_every}")
        if any(step < 1 for step in self.snapshot_steps):
            raise ValueError(f"snapshot_steps must be steps >= 1, got {self.snapshot_steps}")
        unknown = sorted(set(self.report_to) - set(TRACKERS))
        if unknown:
            raise ValueError(f"report_to has unknown tracker(s) {unknown}; trackers are {sorted(TRACKERS)} "
                             "([] for none)")
        if self.resume and self.overwrite:
            raise ValueError("resume=true continues the run in output_dir and overwrite=true deletes it; set one")


def check_step_settings(max_steps: int | None, epochs: float) -> None:
    """The run length SFT and GRPO share, checked in their configs' ``__post_init__``: ``max_steps=-5``
    would train no step without a word."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}; leave it unset to train for `epochs` instead")
    if max_steps is None and epochs <= 0:
        raise ValueError("set epochs > 0 or max_steps")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def open_policy(model: str, seed: int = 0) -> Policy:
    """A saved model folder, or ``preset:NAME`` for a randomly initialised preset."""
    if model.startswith(PRESET_PREFIX):
        return init_preset(model[len(PRESET_PREFIX):], seed=seed)
    return load_policy(model)


class AdaptersOff:
    """The reference of LoRA training: the policy's base model, that is the policy with its adapters switched
    off (and in eval mode) while it scores; no second copy of the weights. Only ``token_logprobs`` is offered:
    what the KL term reads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def token_logprobs(self, batch: PreparedBatch, completion_ids: torch.Tensor,
                       clip_index: torch.Tensor) -> torch.Tensor:
        with adapters_disabled(self.policy.module), evaluating(self.policy.module):
            return self.policy.token_logprobs(batch, completion_ids, clip_index)


def enable_gradient_checkpointing(policy: Policy) -> None:
    """Turn on transformers' activation (gradient) checkpointing in every part of the policy that offers it
    (non-reentrant: frozen inputs, as under LoRA, still pass gradients on); a family without any is an error."""
    from transformers import PreTrainedModel

    models = [m for m in policy.module.modules()
              if isinstance(m, PreTrainedModel) and m.supports_gradient_checkpointing]
    if not models:
        raise ValueError(f"the {policy.family} model offers no gradient checkpointing; "
                         "set gradient_checkpointing=false")
    for model in models:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def set_trainable_parts(policy: Policy, trainable: list[str] | tuple[str, ...] | None,
                        default: tuple[str, ...] = PAPER_TRAINABLE_PARTS) -> dict[str, int]:
    """Freeze everything, then unfreeze the named parts. Returns trainable parameter counts per part.

    ``None`` means the recipe's ``default`` (the paper's SFT choice, :data:`PAPER_TRAINABLE_PARTS`)
    restricted to the parts this family has. A part named explicitly that the family lacks is an error,
    not silently skipped.
    """
    parts = policy.parts()
    if trainable is None:
        names = [name for name in default if name in parts]
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


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """Optimiser steps of the warm-up: ``ceil(ratio * total)``, as the HF Trainer counts them (the paper's
    SFT ran under it), so a ratio > 0 always warms up for at least one step."""
    return math.ceil(warmup_ratio * total_steps)


def build_optimizer(policy: Policy, config: OptimConfig, total_steps: int):
    """AdamW over the trainable parameters (one group per learning-rate multiplier) and its schedule.

    The schedule is ``transformers.get_scheduler``'s, the one the HF Trainer (and so the paper's SFT)
    steps: a linear warm-up from 0 over :func:`warmup_steps` (the first update of a warm-up runs at rate
    0), then cosine / linear decay to 0 or a constant rate."""
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
    scheduler = get_scheduler(_SCHEDULER_NAMES[config.schedule], optimizer,
                              num_warmup_steps=warmup_steps(config.warmup_ratio, total_steps),
                              num_training_steps=total_steps)
    return optimizer, scheduler


def plain_update(policy: Policy, loss: torch.Tensor, optimizers: list[torch.optim.Optimizer], scheduler,
                 max_grad_norm: float, stage: str, step: int) -> None:
    """One single-process update of the short pre-training phases (language, towers), which need no
    accelerator: refuse a non-finite loss, back-propagate, clip the policy's gradients, step every optimiser
    (the policy's first; a phase's throw-away heads may bring their own) and the schedule."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{stage}: loss is {loss.item()} at step {step}")
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in policy.module.parameters() if p.requires_grad],
                                   max_grad_norm or float("inf"))
    for optimizer in optimizers:
        optimizer.step()
    scheduler.step()


def frozen_reference(policy: Policy, model: str | None, seed: int = 0, share_frozen: bool = True) -> Policy:
    """The reference policy for the KL term: ``model`` opened afresh (None: a copy of ``policy``, for a
    policy the caller built), frozen, in eval mode. Call it before training so that it holds the initial
    weights.

    With ``share_frozen`` every parameter the policy does not train is *shared* with the policy
    (same storage), so frozen towers and encoders are held once, not twice. Under DeepSpeed ZeRO-3
    the policy's parameters are partitioned, so call this before ``accelerator.prepare`` or with
    ``share_frozen=False``.
    """
    reference = copy.deepcopy(policy) if model is None else open_policy(model, seed=seed)
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


@dataclass
class Run:
    """What a recipe's loop works with, built once by :func:`prepare_run`."""

    config: RunSettings
    """The recipe's whole config (``SFTConfig``, ``GRPOConfig``)."""
    accelerator: Accelerator
    policy: Policy
    """Trainable parts set, on the device, ``module`` wrapped by accelerate."""
    reference: Policy | None
    """The frozen reference (GRPO's KL term), or None."""
    loader: ClipLoader
    samples: list[Sample]
    order: StepOrder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    total_steps: int
    start_step: int
    """The last finished step: 0, or the resumed checkpoint's step."""
    resumed: dict[str, Any]
    """The resumed checkpoint's counters (``skipped_clips``, ...); empty for a fresh run."""


def prepare_run(config: RunSettings, check_samples: Callable[[list[Sample]], None] | None = None, *,
                policy: Policy | None = None, loader: ClipLoader | None = None, media: MediaCache | None = None,
                default_parts: tuple[str, ...] = PAPER_TRAINABLE_PARTS, reference: bool | str = False,
                seed_per_process: bool = False, updates_per_step: int = 1) -> Run:
    """The set-up both recipes share, in the order that makes a run reproducible and resumable.

    ``config`` is a recipe config: besides :class:`RunSettings` it has ``model``, ``data``, ``output_dir``,
    ``prompt``, ``use_subtitle``, ``trainable``, ``clips_per_step``, ``gradient_accumulation_steps``,
    ``epochs``, ``max_steps`` and ``optim``. Once the folder may be used, ``config.yaml`` and
    ``environment.json`` are written into it (:func:`r1omni.provenance.write_run_record`), and a tracker of
    ``report_to`` that is not installed is named before that. ``check_samples`` raises a ValueError naming
    ``config.data`` when its samples lack what the recipe needs (labels, targets); the samples are read after the run
    folder is checked, so a folder that cannot be used is reported first. The seams: ``policy`` trains
    instead of opening ``config.model``; ``loader`` turns samples into clips instead of a ``ClipLoader`` for
    the policy with the config's prompt (a benchmark or test passes its own); ``media`` is a decoded-clip
    cache shared with other runs of this process.

    Recipe differences, stated by the caller: ``default_parts`` train when ``config.trainable`` is None;
    ``reference`` adds a frozen reference (True: the initial policy, under ``config.lora`` the policy with
    its adapters off; a name: that model), built before accelerate wraps the policy so frozen weights can be
    shared; ``updates_per_step`` optimiser updates per step set the schedule's length. ``seed_per_process``
    seeds each process with ``seed + rank``, so that processes draw different samples (GRPO); SFT draws
    nothing at random, so all its processes keep ``seed``. The preset's weights come from ``config.seed``
    either way, the same in every process.
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    check_trackers(config.report_to)      # a missing tracker package is named before anything is opened
    accelerator = make_accelerator(config.mixed_precision, log_dir=str(config.output_dir))
    checkpoint = prepare_run_folder(accelerator, config.output_dir, config_to_dict(config), config.resume,
                                    config.overwrite)
    if accelerator.is_main_process:
        write_run_record(config.output_dir, config)
    seed_everything(config.seed + (accelerator.process_index if seed_per_process else 0))
    opened = policy is None
    policy = open_policy(config.model, seed=config.seed) if opened else policy
    counts = set_trainable_parts(policy, config.trainable, default=default_parts)
    if adapter_layers(policy.module):
        raise ValueError(f"{config.model} holds LoRA adapters; train on its merged weights (save it with "
                         "lora.merge=true) or on its base model")
    if config.lora is not None:
        counts["llm"] = add_adapters(policy, config.lora)   # the language model trains through its adapters
    logger.info("trainable parameters by part: %s", counts)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(policy)
    policy.module.to(accelerator.device)
    frozen = None
    if reference is True and config.lora is not None:
        frozen = AdaptersOff(policy)
    elif reference:
        source = reference if isinstance(reference, str) else config.model if opened else None
        frozen = frozen_reference(policy, source, seed=config.seed)
        frozen.module.to(accelerator.device)
    samples = read_samples(config.data)
    if check_samples is not None:
        check_samples(samples)
    if loader is None:
        loader = ClipLoader.for_policy(policy, prompt=config.prompt, use_subtitle=config.use_subtitle,
                                       cache=MediaCache.of_run(media, config.cache_media))
    order = StepOrder(len(samples), config.clips_per_step, accelerator.num_processes, config.seed)
    total_steps = config.max_steps or max(1, int(config.epochs * order.micro_steps_per_epoch
                                                 / config.gradient_accumulation_steps))
    optimizer, scheduler = build_optimizer(policy, config.optim, total_steps * updates_per_step)
    policy.module, optimizer, scheduler = accelerator.prepare(policy.module, optimizer, scheduler)
    resumed: dict[str, Any] = {}
    if checkpoint is not None:
        resumed = load_checkpoint(accelerator, checkpoint)
        logger.info("resumed from %s at step %d", checkpoint, resumed["step"])
    return Run(config, accelerator, policy, frozen, loader, samples, order, optimizer, scheduler, total_steps,
               resumed.get("step", 0), resumed)


def micro_batch(run: Run, step: int, micro: int) -> tuple[list[ClipInput], list[Sample], int]:
    """This process's clips of one micro-batch of ``step`` (1-based), their samples, and how many were
    skipped as unreadable (each logged; the run goes on without them)."""
    indices = run.order.indices((step - 1) * run.config.gradient_accumulation_steps + micro,
                                run.accelerator.process_index)
    loaded = run.loader.load_many([run.samples[index] for index in indices])
    for err in loaded.failures.values():
        logger.warning("step %d: skipping clip: %s", step, err)
    return loaded.clips, loaded.kept, len(indices) - len(loaded.clips)
