"""Supervised fine-tuning: the cold start on reasoning, the label-only baseline, perception pre-training.

Setup → loop → save, top to bottom. The loss is the mean negative log-likelihood of the
assistant's tokens only (the prompt and the media are never targets), computed through the
policy's ``token_logprobs`` so that every family, and every accelerate / DeepSpeed wrapping, is
trained the same way. Four uses differ only in ``target``:

* ``reasoning``: ``<think>…</think>\\n<answer>label</answer>`` (the paper's EMER cold start);
* ``label``: the bare label word (the paper's MAFW-DFEW-SFT baseline);
* ``description``: the clip's cue description (perception pre-training, never an emotion word);
* ``instruction``: each clip's own question and answer (``meta``), r1omni's base pre-training of
  tiny models, standing in for HumanOmni's instruction tuning.

Run under ``accelerate launch`` for several processes; each trains on its own slice of every
global batch (``r1omni.train.data.StepOrder``). The set-up is GRPO's (``r1omni.train.setup.prepare_run``);
the loop reads in named steps: :func:`_sft_step` (the micro-batches' loss and one optimiser update),
:func:`_step_metrics` (the logged row), :func:`_greedy_sample` (the sample log).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from r1omni.clips import SAMPLE_QUESTION, ClipLoader, MediaCache, remove_modalities
from r1omni.models import ClipInput, Policy, SamplingConfig
from r1omni.schema import Sample
from r1omni.train.checkpoint import TrainResult, save_checkpoint, save_final, save_snapshot, training_card
from r1omni.train.data import TARGETS, target_text
from r1omni.train.losses import completion_nll
from r1omni.train.rollout import HFGenerateEngine
from r1omni.train.setup import (
    OptimConfig,
    Run,
    RunSettings,
    check_step_settings,
    clip_gradients,
    micro_batch,
    prepare_run,
)
from r1omni.train.tracking import RunTracker, check_finite
from r1omni.yamlconfig import config_to_dict

__all__ = ["SFTConfig", "train_sft"]

logger = logging.getLogger(__name__)

_DEFAULT_PROMPTS = {"reasoning": "train", "label": "train", "description": "describe", "instruction": SAMPLE_QUESTION}


@dataclass
class SFTConfig(RunSettings):
    """Settings of one SFT run. Defaults follow the paper's EMER-SFT (lr 2e-5, cosine, warm-up 0.03); the
    run-control fields (seed, save_every, resume, ...) are :class:`r1omni.train.setup.RunSettings`'."""

    model: str
    """Initial model: a saved model folder, or ``preset:NAME`` for random weights."""
    data: str
    """Manifest JSONL of training samples."""
    output_dir: str
    """Run folder: metrics, checkpoints, and the final model in ``final/``."""
    target: str = "reasoning"
    """What the assistant learns to say: reasoning, label, description or instruction."""
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
    modality_dropout: dict[str, float] = field(default_factory=dict)
    """Share of training clips whose ``"audio"`` (silenced) or ``"video"`` (grey frames) is removed, drawn per
    clip from (seed, micro step): dropping the *dominant* stream makes the model learn the other one (modality
    competition; see ``shared/notes/levers-2026-12.md`` section 2). Empty: every clip whole."""

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.modality_dropout.items() if k not in ("audio", "video") or not 0 <= v <= 1}
        if bad:
            raise ValueError(f"modality_dropout takes 'audio' / 'video' shares in [0, 1], got {bad}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        check_step_settings(self.max_steps, self.epochs)
        super().__post_init__()
        if self.clips_per_step < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("clips_per_step and gradient_accumulation_steps must be >= 1")
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


@dataclass
class _Step:
    """One optimiser step's numbers, and what the sample log needs."""

    loss_sum: float
    """Token-weighted sum of the micro-batches' mean losses (divided by ``tokens`` when logged)."""
    tokens: int
    skipped: int
    """Clips skipped as unreadable in this step."""
    grad_norm: float | None
    lr: float
    """The learning rate this step's update used."""
    last: tuple[ClipInput, str, int] | None
    """The last micro-batch's first clip, its target and the target's token count; None if it was empty."""


def train_sft(config: SFTConfig, media: MediaCache | None = None, *, policy: Policy | None = None,
              loader: ClipLoader | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.data``; ``media``: decoded clips shared with other runs of this
    process (a private cache when None and ``config.cache_media``). ``policy`` / ``loader`` replace the
    policy opened from ``config.model`` / the clip loader built for it (:func:`r1omni.train.setup.prepare_run`)."""
    started = time.perf_counter()
    run = _setup(config, media, policy, loader)
    output_dir, skipped = Path(config.output_dir), run.resumed.get("skipped_clips", 0)
    recipe = f"sft/{config.target}"
    tracker = RunTracker(output_dir, run.total_steps, run.start_step, enabled=run.accelerator.is_main_process,
                         description=recipe, postfix_keys=("loss", "lr"), accelerator=run.accelerator,
                         report_to=config.report_to, config=config_to_dict(config))
    run.policy.module.train()
    merge = config.lora is not None and config.lora.merge   # how the saved models hold LoRA adapters
    for step in range(run.start_step + 1, run.total_steps + 1):
        step_started = time.perf_counter()
        done = _sft_step(run, step)
        seconds = time.perf_counter() - step_started
        skipped += done.skipped
        if step % config.log_every == 0 or step == run.total_steps:
            tracker.log(step, _step_metrics(done, seconds, skipped))
        if config.sample_every and step % config.sample_every == 0 and run.accelerator.is_main_process and done.last:
            tracker.samples(step, [_greedy_sample(run, *done.last)])
        if config.save_every and step % config.save_every == 0 and step < run.total_steps:
            save_checkpoint(run.accelerator, run.policy, output_dir, step, config_to_dict(config),
                            {"skipped_clips": skipped}, merge=merge)
        if step in config.snapshot_steps:
            save_snapshot(run.accelerator, run.policy, output_dir, step, merge=merge,
                          card=training_card(config, recipe, step))
    tracker.close()
    final = save_final(run.accelerator, run.policy, output_dir, merge=merge,
                       card=training_card(config, recipe, run.total_steps))
    clip_views = run.total_steps * run.order.global_batch * config.gradient_accumulation_steps
    return TrainResult(output_dir, final, run.total_steps, clip_views, time.perf_counter() - started, skipped)


def _setup(config: SFTConfig, media: MediaCache | None, policy: Policy | None, loader: ClipLoader | None) -> Run:
    """The set-up GRPO shares, on samples that each have a text for ``config.target``."""

    def check_targets(samples: list[Sample]) -> None:
        problems = []
        for sample in samples:
            try:
                target_text(sample, config.target)
            except ValueError as err:
                problems.append(str(err))
        if problems:
            raise ValueError(f"{config.data}: {len(problems)} sample(s) cannot be used for target "
                             f"{config.target!r}, e.g. {problems[0]}")

    return prepare_run(config, check_targets, policy=policy, loader=loader, media=media)


def _sft_step(run: Run, step: int) -> _Step:
    """Gradients of each micro-batch's loss (accumulated, all-reduced after the last one), then one update."""
    config, accelerator = run.config, run.accelerator
    accum = config.gradient_accumulation_steps
    loss_sum, tokens, skipped, last = 0.0, 0, 0, None
    for micro in range(accum):
        clips, samples, failed = micro_batch(run, step, micro)
        clips = drop_modalities(clips, config.modality_dropout, config.seed, (step - 1) * accum + micro)
        skipped += failed
        last = None
        if not clips:
            continue
        targets = [target_text(sample, config.target) for sample in samples]
        with run.accelerator.autocast():
            loss, mask, ids = completion_nll(run.policy, clips, targets, run.accelerator.device)
        check_finite(step, loss=loss.item())
        sync_context = accelerator.no_sync(run.policy.module) if micro < accum - 1 else contextlib.nullcontext()
        with sync_context:
            accelerator.backward(loss / accum)
        loss_sum += loss.item() * mask.sum().item()
        tokens += int(mask.sum().item())
        last = (clips[0], targets[0], int(ids.shape[1]))
    grad_norm = clip_gradients(accelerator, run.policy.module, config.optim.max_grad_norm)
    if grad_norm is not None:
        check_finite(step, grad_norm=grad_norm)
    lr = run.scheduler.get_last_lr()[0]   # the rate this update uses, logged
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return _Step(loss_sum, tokens, skipped, grad_norm, lr, last)


def _step_metrics(done: _Step, seconds: float, skipped: int) -> dict[str, float]:
    """The logged row of one step: the token-weighted loss, the rate used, throughput, clips skipped so far."""
    return {"loss": done.loss_sum / max(done.tokens, 1), "lr": done.lr, "grad_norm": done.grad_norm or 0.0,
            "tokens_per_second": done.tokens / seconds, "skipped_clips": skipped}


def _greedy_sample(run: Run, clip: ClipInput, target: str, target_tokens: int) -> dict[str, str]:
    """A greedy completion of ``clip`` beside its target, through the engine GRPO samples with (the bare
    model, eval mode, no gradients), a few tokens longer than the target."""
    batch = run.policy.prepare([clip]).to(run.accelerator.device)
    rollout = HFGenerateEngine(run.accelerator).generate(run.policy, batch, 1,
                                                         SamplingConfig(max_new_tokens=target_tokens + 8))
    return {"target": target, "output": rollout.completions.texts[0]}
