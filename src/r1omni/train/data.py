"""Which clips each process trains on at each step, and what the assistant should say.

The order is a pure function of (seed, epoch): every process computes the same permutation and
takes its own slice, so groups never mix processes, a resumed run sees exactly the clips the
uninterrupted run would have, and the data position to store is just the micro-step counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1omni.schema import Sample
from r1omni.template import render_completion

__all__ = ["StepOrder", "TARGETS", "target_text"]

TARGETS = ("reasoning", "label", "description", "instruction")


@dataclass(frozen=True)
class StepOrder:
    """Deterministic epoch-shuffled order of ``num_samples`` clips, cut into micro-batches of
    ``clips_per_process`` for each of ``num_processes`` processes (an incomplete last global
    batch of an epoch is dropped so every process sees the same number of steps)."""

    num_samples: int
    clips_per_process: int
    num_processes: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.micro_steps_per_epoch < 1:
            raise ValueError(f"{self.num_samples} samples are fewer than one global batch "
                             f"({self.clips_per_process} clips x {self.num_processes} processes)")

    @property
    def global_batch(self) -> int:
        return self.clips_per_process * self.num_processes

    @property
    def micro_steps_per_epoch(self) -> int:
        return self.num_samples // self.global_batch

    def indices(self, micro_step: int, process_index: int) -> list[int]:
        epoch, position = divmod(micro_step, self.micro_steps_per_epoch)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        start = position * self.global_batch + process_index * self.clips_per_process
        return order[start:start + self.clips_per_process].tolist()


def target_text(sample: Sample, target: str) -> str:
    """The assistant's text for SFT: reasoning + answer (cold start), the bare label (label-SFT
    baseline, as MAFW-DFEW-SFT), the clip's cue description (perception pre-training), or the answer
    to the clip's own question (``meta["answer"]``, instruction pre-training; the question is
    ``meta["question"]``, see ``r1omni.clips.SAMPLE_QUESTION``)."""
    if target == "reasoning":
        if not sample.reasoning or not sample.label:
            raise ValueError(f"sample {sample.id!r} has no reasoning/label for target 'reasoning'")
        return render_completion(sample.reasoning, sample.label)
    if target == "label":
        if not sample.label:
            raise ValueError(f"sample {sample.id!r} has no label")
        return sample.label
    if target == "description":
        description = sample.meta.get("description")
        if not description:
            raise ValueError(f"sample {sample.id!r} has no meta['description'] for target 'description'")
        return description
    if target == "instruction":
        if not sample.meta.get("answer") or not sample.meta.get("question"):
            raise ValueError(f"sample {sample.id!r} has no meta['question'] / meta['answer'] for target 'instruction'")
        return sample.meta["answer"]
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
