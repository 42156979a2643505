"""Rollout engines: who samples the G completions per clip during GRPO.

``HFGenerateEngine`` (the default) calls the policy's own ``generate`` (Hugging Face generate on
the bare, unwrapped model; media encoded once per clip). Engines share one small interface so a
faster sampler (vLLM, for the Qwen-Omni thinkers) can replace it; such an engine returns the
sampler's own log-probs so the loss can correct for the sampler/trainer mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from accelerate import Accelerator

from r1omni.models import Completions, Policy, PreparedBatch, SamplingConfig
from r1omni.train.setup import unwrapped

__all__ = ["Rollout", "RolloutEngine", "HFGenerateEngine", "ENGINES"]


@dataclass
class Rollout:
    completions: Completions
    sampler_logprobs: torch.Tensor | None = None   # (N, C) from an external sampler, else None


class RolloutEngine(Protocol):
    def generate(self, policy: Policy, batch: PreparedBatch, num_generations: int,
                 sampling: SamplingConfig) -> Rollout: ...


class HFGenerateEngine:
    """Sampling with the policy's own ``generate`` in eval mode, without gradients."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.accelerator = accelerator

    def generate(self, policy: Policy, batch: PreparedBatch, num_generations: int,
                 sampling: SamplingConfig) -> Rollout:
        with unwrapped(policy, self.accelerator) as bare, torch.no_grad():
            was_training = bare.module.training
            bare.module.eval()
            try:
                completions = bare.generate(batch, num_return_sequences=num_generations, sampling=sampling)
            finally:
                bare.module.train(was_training)
        return Rollout(completions)


ENGINES = {"hf": HFGenerateEngine}
