"""Text-only pre-training of a from-scratch model's language model: what a released checkpoint's LLM
already knows before any clip is shown to it.

Why: HumanOmni and Qwen-Omni start from an LLM pre-trained on text, so they can copy a span of their
prompt into their answer (quote the subtitle). The embedded benchmark's ~1M-parameter model starts from
random weights, and its clip data holds a few dozen subtitle sentences: trained on those alone it recites
a frequent sentence instead of the clip's (issue #26: the subtitle quoted right in 3 % of the cold start's
answers). A few hundred steps of reading random subtitles back teach it to copy (the ability appears
abruptly, after ~300 steps of 32 exercises at lr 1e-3), and the later stages keep it.

The exercises come from the caller (``exercise(rng) -> (question, answer)``, e.g.
:func:`r1omni.synth.text.reading_practice`); the loss is SFT's, the mean negative log-likelihood of the
answer's tokens computed through the policy's ``token_logprobs`` on clips without media, so every family
trains alike. One process (it is the demo's first, seconds-long stage); the saved folder is written
atomically and loads like any model folder.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from r1omni.atomic import atomic_dir, atomic_write_text
from r1omni.models import ClipInput, Policy
from r1omni.models.card import CardInfo
from r1omni.provenance import write_run_record
from r1omni.train.checkpoint import TrainResult
from r1omni.train.losses import completion_nll
from r1omni.train.setup import OptimConfig, build_optimizer, plain_update, seed_everything, set_trainable_parts

logger = logging.getLogger(__name__)

__all__ = ["LanguageConfig", "train_language", "exercise_loss"]


@dataclass
class LanguageConfig:
    steps: int = 400
    batch_size: int = 32
    optim: OptimConfig = None  # type: ignore[assignment]
    """Default: lr 1e-3, cosine after a 5 % warm-up."""
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.optim is None:
            self.optim = OptimConfig(lr=1e-3, schedule="cosine", warmup_ratio=0.05)


def exercise_loss(policy: Policy, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """SFT's loss of each answer given its question (a clip without media)."""
    clips = [ClipInput(question=question) for question, _ in pairs]
    return completion_nll(policy, clips, [answer for _, answer in pairs], policy.device)[0]


def train_language(policy: Policy, exercise: Callable[[np.random.Generator], tuple[str, str]],
                   config: LanguageConfig, output_dir: str | Path, base_model: str | None = None) -> TrainResult:
    """Train the LLM (towers and projectors frozen) on ``config.steps`` batches of exercises; save the
    whole model to ``output_dir/final`` (its card names ``base_model``, where the policy came from), the loss
    curve to ``output_dir/metrics.jsonl``, and the run's record (``config.yaml``, ``environment.json``)."""
    out = Path(output_dir)
    write_run_record(out, config)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    set_trainable_parts(policy, ["llm"])
    policy.module.train()
    optimizer, scheduler = build_optimizer(policy, config.optim, config.steps)
    rows, start = [], time.perf_counter()
    for step in range(1, config.steps + 1):
        loss = exercise_loss(policy, [exercise(rng) for _ in range(config.batch_size)])
        plain_update(policy, loss, [optimizer], scheduler, config.optim.max_grad_norm, "language pre-training", step)
        if step % config.log_every == 0 or step == config.steps:
            rows.append({"step": step, "loss": loss.item(), "seconds": time.perf_counter() - start})
            logger.info("language step %d/%d  loss %.3f", step, config.steps, loss.item())
    policy.module.eval()
    with atomic_dir(out / "final") as tmp:
        policy.save(tmp, card=CardInfo(base_model=base_model, recipe="language", steps=config.steps))
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    return TrainResult(output_dir=out, final_model=out / "final", steps=config.steps, clip_views=0,
                       wall_seconds=time.perf_counter() - start, skipped_clips=0)
