"""Rollout engines: who samples the G completions per clip during GRPO.

``HFGenerateEngine`` (the default, despite its name) calls the policy's own ``generate`` on the bare,
unwrapped model: r1omni's decoding loop (``r1omni.models.decoding``, which decodes in eval mode), media
encoded once per clip; SFT's sample log goes through it too. Engines share one small interface so a
faster sampler can replace it: ``r1omni.train.vllm_engine.VLLMEngine`` (Qwen2.5-Omni thinkers on
a GPU) returns the sampler's own log-probs so the loss can correct for the sampler/trainer
mismatch. The name -> engine table (``ENGINES``) lives in ``r1omni.train.grpo``, above both, so
imports run one way: rollout <- vllm_engine <- grpo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from accelerate import Accelerator

from r1omni.models import ClipInput, Completions, Policy, PreparedBatch, SamplingConfig
from r1omni.train.accelerated import unwrapped

__all__ = ["Rollout", "RolloutEngine", "HFGenerateEngine"]


@dataclass
class Rollout:
    completions: Completions
    sampler_logprobs: torch.Tensor | None = None   # (N, C) from an external sampler, else None


class RolloutEngine(Protocol):
    def generate(self, policy: Policy, batch: PreparedBatch, num_generations: int,
                 sampling: SamplingConfig, clips: list[ClipInput] | None = None) -> Rollout:
        """G completions per clip of ``batch`` (``clips``: the same clips decoded, for engines that
        do their own pre-processing)."""
        ...


class HFGenerateEngine:
    """Sampling with the policy's own ``generate`` (eval mode, no gradients: ``generate`` owns both)."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.accelerator = accelerator

    def generate(self, policy: Policy, batch: PreparedBatch, num_generations: int,
                 sampling: SamplingConfig, clips: list[ClipInput] | None = None) -> Rollout:
        with unwrapped(policy, self.accelerator) as bare:   # generate sets (and restores) eval mode itself
            return Rollout(bare.generate(batch, num_return_sequences=num_generations, sampling=sampling))
