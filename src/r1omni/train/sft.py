"""Supervised fine-tuning: the cold start on reasoning, the label-only baseline, perception pre-training.

Setup → loop → save, top to bottom. The loss is the mean negative log-likelihood of the
assistant's tokens only (the prompt and the media are never targets), computed through the
policy's ``token_logprobs`` so that every family, and every accelerate / DeepSpeed wrapping, is
trained the same way. Three uses differ only in ``target``:

* ``reasoning``: ``<think>…</think>\\n<answer>label</answer>`` (the paper's EMER cold start);
* ``label``: the bare label word (the paper's MAFW-DFEW-SFT baseline);
* ``description``: the clip's cue description (perception pre-training, never an emotion word);
* ``instruction``: each clip's own question and answer (``meta``), r1omni's base pre-training of
  tiny models, standing in for HumanOmni's instruction tuning.

Run under ``accelerate launch`` for several processes; each trains on its own slice of every
global batch (``r1omni.train.data.StepOrder``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from r1omni.clips import SAMPLE_QUESTION, ClipLoader, MediaCache, remove_modalities
from r1omni.models.policy import ClipInput
from r1omni.models import SamplingConfig
from r1omni.schema import Sample, read_samples
from r1omni.train.checkpoint import (
    TrainResult,
    load_checkpoint,
    prepare_run_folder,
    save_checkpoint,
    save_final,
    save_snapshot,
)
from r1omni.train.data import TARGETS, StepOrder, target_text
from r1omni.train.setup import (
    OptimConfig,
    build_optimizer,
    check_step_settings,
    clip_gradients,
    make_accelerator,
    open_policy,
    seed_everything,
    set_trainable_parts,
    unwrapped,
)
from r1omni.train.tracking import RunTracker, check_finite
from r1omni.yamlconfig import config_to_dict

__all__ = ["SFTConfig", "train_sft"]

logger = logging.getLogger(__name__)

_DEFAULT_PROMPTS = {"reasoning": "train", "label": "train", "description": "describe", "instruction": SAMPLE_QUESTION}


@dataclass
class SFTConfig:
    """Settings of one SFT run. Defaults follow the paper's EMER-SFT (lr 2e-5, cosine, warm-up 0.03)."""

    model: str
    """Initial model: a saved model folder, or ``preset:NAME`` for random weights."""
    data: str
    """Manifest JSONL of training samples."""
    output_dir: str
    """Run folder: metrics, checkpoints, and the final model in ``final/``."""
    target: str = "reasoning"
    """What the assistant learns to say: reasoning, label or description."""
    prompt: str | None = None
    """Named prompt or text; None picks ``train`` (reasoning, label), ``describe`` (description) or each
    sample's own question (instruction)."""
    use_subtitle: bool = True
    """Put the clip's subtitle (when it has one) before the question."""
    trainable: list[str] | None = None
    """Parts that train; None = the paper's choice (LLM, projectors, gate)."""
    epochs: float = 1.0
    """Passes over the data (fractions allowed); ignored when max_steps is set."""
    max_steps: int | None = None
    """Optimiser steps; overrides epochs."""
    clips_per_step: int = 8
    """Clips per process per micro-batch."""
    gradient_accumulation_steps: int = 1
    optim: OptimConfig = field(default_factory=OptimConfig)
    mixed_precision: str = "no"
    """accelerate's mixed precision: no, bf16 or fp16 (GPU)."""
    seed: int = 42
    cache_media: bool = True
    """Keep decoded clips in memory (right for small sets; turn off for large corpora)."""
    log_every: int = 1
    sample_every: int = 0
    """Every N steps log a greedy completion of the first clip of the batch (0 = never)."""
    save_every: int = 0
    """Checkpoint every N steps (0 = only at the end)."""
    snapshot_steps: list[int] = field(default_factory=list)
    """Also save the model after these steps (``OUT/snapshots/``), e.g. for a budget curve from one run."""
    resume: bool = False
    """Continue from the newest complete checkpoint in output_dir (refused if another config wrote it)."""
    overwrite: bool = False
    """Start over in an output_dir that holds an earlier run, deleting its checkpoints, model and logs."""
    num_threads: int | None = None
    """torch CPU threads (None = leave torch's default)."""
    modality_dropout: dict[str, float] = field(default_factory=dict)
    """Share of training clips whose ``"audio"`` (silenced) or ``"video"`` (grey frames) is removed, drawn per
    clip from (seed, step): dropping the *dominant* stream makes the model learn the other one (modality
    competition; see ``shared/notes/levers-2026-12.md`` section 2). Empty: every clip whole."""

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.modality_dropout.items() if k not in ("audio", "video") or not 0 <= v <= 1}
        if bad:
            raise ValueError(f"modality_dropout takes 'audio' / 'video' shares in [0, 1], got {bad}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        check_step_settings(self.max_steps, self.epochs, self.log_every, self.save_every, self.sample_every,
                            self.snapshot_steps)
        if self.clips_per_step < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("clips_per_step and gradient_accumulation_steps must be >= 1")
        if self.resume and self.overwrite:
            raise ValueError("resume=true continues the run in output_dir and overwrite=true deletes it; set one")
        if self.prompt is None:
            self.prompt = _DEFAULT_PROMPTS[self.target]


def drop_modalities(clips: list[ClipInput], shares: dict[str, float], seed: int, micro_step: int) -> list[ClipInput]:
    """``clips`` with each stream of ``shares`` removed from that share of them (the draw is a function of
    (seed, micro step), so a resumed run drops what the uninterrupted one would)."""
    if not any(shares.values()):
        return clips
    generator = torch.Generator().manual_seed(seed * 1_000_003 + micro_step)
    draws = {name: torch.rand(len(clips), generator=generator).tolist() for name in ("video", "audio")}
    return [remove_modalities(clip, video=draws["video"][i] < shares.get("video", 0.0),
                              audio=draws["audio"][i] < shares.get("audio", 0.0))
            for i, clip in enumerate(clips)]


def _usable(samples: list[Sample], target: str) -> tuple[list[Sample], list[str]]:
    kept, problems = [], []
    for sample in samples:
        try:
            target_text(sample, target)
            kept.append(sample)
        except ValueError as err:
            problems.append(str(err))
    return kept, problems


def train_sft(config: SFTConfig, media: MediaCache | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.data``; ``media``: decoded clips shared with other runs of this
    process (a private cache when None and ``config.cache_media``)."""
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    output_dir = Path(config.output_dir)
    accelerator = make_accelerator(config.mixed_precision, log_dir=str(output_dir))
    checkpoint = prepare_run_folder(accelerator, output_dir, config_to_dict(config), config.resume, config.overwrite)
    seed_everything(config.seed)

    # -- setup -------------------------------------------------------------------------------
    policy = open_policy(config.model, seed=config.seed)
    counts = set_trainable_parts(policy, config.trainable)
    logger.info("trainable parameters by part: %s", counts)
    policy.module.to(accelerator.device)
    samples, problems = _usable(read_samples(config.data), config.target)
    if problems:
        raise ValueError(f"{config.data}: {len(problems)} sample(s) cannot be used for target "
                         f"{config.target!r}, e.g. {problems[0]}")
    loader = ClipLoader.for_policy(policy, prompt=config.prompt, use_subtitle=config.use_subtitle,
                                    cache=MediaCache.of_run(media, config.cache_media))
    order = StepOrder(len(samples), config.clips_per_step, accelerator.num_processes, config.seed)
    accum = config.gradient_accumulation_steps
    total_steps = config.max_steps or max(1, int(config.epochs * order.micro_steps_per_epoch / accum))
    optimizer, scheduler = build_optimizer(policy, config.optim, total_steps)
    policy.module, optimizer, scheduler = accelerator.prepare(policy.module, optimizer, scheduler)

    start_step, skipped = 0, 0
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint)
        start_step, skipped = state["step"], state.get("skipped_clips", 0)
        logger.info("resumed from %s at step %d", checkpoint, start_step)
    tracker = RunTracker(output_dir, total_steps, start_step, enabled=accelerator.is_main_process,
                         description=f"sft/{config.target}", postfix_keys=("loss", "lr"))

    # -- loop --------------------------------------------------------------------------------
    policy.module.train()
    for step in range(start_step + 1, total_steps + 1):
        step_started = time.perf_counter()
        loss_sum, token_count = 0.0, 0
        for micro in range(accum):
            indices = order.indices((step - 1) * accum + micro, accelerator.process_index)
            loaded = loader.load_many([samples[index] for index in indices])
            skipped += len(indices) - len(loaded.clips)
            for err in loaded.failures.values():
                logger.warning("step %d: skipping clip: %s", step, err)
            clips, targets = loaded.clips, [target_text(sample, config.target) for sample in loaded.kept]
            clips = drop_modalities(clips, config.modality_dropout, config.seed, (step - 1) * accum + micro)
            if not clips:
                continue
            batch = policy.prepare(clips).to(accelerator.device)
            ids, mask = policy.encode_completions(targets)
            ids, mask = ids.to(accelerator.device), mask.to(accelerator.device)
            with accelerator.autocast():
                logp = policy.token_logprobs(batch, ids, torch.arange(len(clips), device=accelerator.device))
            mask = mask.to(logp.dtype)                                         # (B, C)
            loss = -(logp * mask).sum() / mask.sum().clamp(min=1)
            check_finite(step, loss=loss.item())
            sync_context = accelerator.no_sync(policy.module) if micro < accum - 1 else contextlib.nullcontext()
            with sync_context:
                accelerator.backward(loss / accum)
            loss_sum += loss.item() * mask.sum().item()
            token_count += int(mask.sum().item())
        grad_norm = clip_gradients(accelerator, policy.module, config.optim.max_grad_norm)
        if grad_norm is not None:
            check_finite(step, grad_norm=grad_norm)
        lr = scheduler.get_last_lr()[0]   # the rate this update uses, logged below
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        seconds = time.perf_counter() - step_started
        if step % config.log_every == 0 or step == total_steps:
            tracker.log(step, {"loss": loss_sum / max(token_count, 1), "lr": lr,
                               "grad_norm": grad_norm or 0.0, "tokens_per_second": token_count / seconds,
                               "skipped_clips": skipped})
        if config.sample_every and step % config.sample_every == 0 and accelerator.is_main_process and clips:
            with unwrapped(policy, accelerator) as bare:    # generate sets (and restores) eval mode itself
                greedy = bare.generate(policy.prepare(clips[:1]).to(accelerator.device),
                                       sampling=SamplingConfig(max_new_tokens=int(ids.shape[1]) + 8))
            tracker.samples(step, [{"target": targets[0], "output": greedy.texts[0]}])
        if config.save_every and step % config.save_every == 0 and step < total_steps:
            save_checkpoint(accelerator, policy, output_dir, step, config_to_dict(config), {"skipped_clips": skipped})
        if step in config.snapshot_steps:
            save_snapshot(accelerator, policy, output_dir, step)
    tracker.close()

    # -- save --------------------------------------------------------------------------------
    final = save_final(accelerator, policy, output_dir)
    clip_views = total_steps * order.global_batch * accum
    return TrainResult(output_dir, final, total_steps, clip_views, time.perf_counter() - started, skipped)
