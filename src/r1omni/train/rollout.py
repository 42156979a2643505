"""Rollout engines: who samples the G completions per clip during GRPO.

``HFGenerateEngine`` (the default) calls the policy's own ``generate`` (Hugging Face generate on
the bare, unwrapped model; media encoded once per clip). Engines share one small interface so a
faster sampler can replace it: ``r1omni.train.vllm_engine.VLLMEngine`` (Qwen2.5-Omni thinkers on
a GPU) returns the sampler's own log-probs so the loss can correct for the sampler/trainer
mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from accelerate import Accelerator

from r1omni.models import ClipInput, Completions, Policy, PreparedBatch, SamplingConfig
from r1omni.train.setup import unwrapped

__all__ = ["Rollout", "RolloutEngine", "HFGenerateEngine", "ENGINES", "make_engine"]


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
    """Sampling with the policy's own ``generate`` in eval mode, without gradients."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.accelerator = accelerator

    def generate(self, policy: Policy, batch: PreparedBatch, num_generations: int,
                 sampling: SamplingConfig, clips: list[ClipInput] | None = None) -> Rollout:
        with unwrapped(policy, self.accelerator) as bare, torch.no_grad():
            was_training = bare.module.training
            bare.module.eval()
            try:
                completions = bare.generate(batch, num_return_sequences=num_generations, sampling=sampling)
            finally:
                bare.module.train(was_training)
        return Rollout(completions)


ENGINES = ("hf", "vllm")


def make_engine(name: str, accelerator: Accelerator, vllm_options=None, seed: int = 0) -> RolloutEngine:
    """The engine called ``name`` (vLLM is imported only when asked for)."""
    if name == "hf":
        return HFGenerateEngine(accelerator)
    if name == "vllm":
        from r1omni.train.vllm_engine import VLLMEngine, VLLMOptions

        return VLLMEngine(accelerator, vllm_options or VLLMOptions(), seed=seed)
    raise ValueError(f"unknown rollout engine {name!r}; use one of {ENGINES}")
