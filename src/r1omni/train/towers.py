"""Tower pre-training: the video and audio towers learn to measure the face's and the voice's cues before the
language model reads them.

Why: HumanOmni and Qwen-Omni start from towers pre-trained on faces, scenes and speech; the embedded
benchmark's ~1M-parameter model starts from random towers, which the later stages train only through the
language model's text loss. There the face was lost first (issue #26): a linear probe of the face's emotion
from the projected video tokens reached 0.80-0.83 where one from the pixels reaches 0.90-0.97, and the
label-SFT model called a smiling face with a resting voice ``neutral``. Regressing each clip's cue values
(mouth curve, brow raise, ... for the video tower; pitch, loudness, ... for the audio tower: action units and
prosody, not emotions) from the mean of the clip's tokens, through a throw-away linear head per stream,
gives every tower a direct signal for what it must see or hear.

The targets are ``sample.meta["cues"]``, every cue of :mod:`r1omni.claims` for both modalities: the
generated benchmark writes them; real corpora would need annotated or measured ones (:mod:`r1omni.cues`
measures only a few, such as the smile and the pitch, so real clips are refused here, by name). Only the
towers, their projectors and the media norm train; the heads are dropped. One process (a minute-long stage
of the demo's base); the saved folder is written atomically and loads like any model folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from r1omni.atomic import atomic_dir
from r1omni.claims import FACE_CUES, VOICE_CUES
from r1omni.clips import ClipLoader
from r1omni.models import Policy
from r1omni.models.card import CardInfo
from r1omni.provenance import write_run_record
from r1omni.schema import Sample
from r1omni.train.checkpoint import TrainResult
from r1omni.train.setup import OptimConfig, build_optimizer, plain_update, seed_everything, set_trainable_parts
from r1omni.train.tracking import RunTracker

logger = logging.getLogger(__name__)

__all__ = ["TowerConfig", "train_towers", "cue_targets", "STREAM_CUES", "TOWER_PARTS"]


# Which cues each stream's tower learns to measure (the cue space of r1omni.claims).
STREAM_CUES = {"video": ("face", [cue.name for cue in FACE_CUES]), "audio": ("voice", [cue.name for cue in VOICE_CUES])}
# What produces the media tokens (the media norm belongs to the projectors); the language model stays frozen.
TOWER_PARTS = ["vision_tower", "vision_projector", "audio_tower", "audio_projector"]


@dataclass
class TowerConfig:
    """The tower phase's budget (the demo's: 400 steps of 16 clips at lr 1e-3, ~70 s on 2 CPU cores)."""

    steps: int = 400
    clips_per_step: int = 16
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, schedule="cosine", warmup_ratio=0.05))
    seed: int = 0
    log_every: int = 50
    trainable: list[str] = field(default_factory=lambda: list(TOWER_PARTS))

    def __post_init__(self) -> None:
        if "llm" in self.trainable:
            raise ValueError("tower pre-training trains what produces the media tokens; leave 'llm' out of trainable")
        if self.steps < 1 or self.clips_per_step < 1:
            raise ValueError(f"steps and clips_per_step must be >= 1, got {self.steps} and {self.clips_per_step}")


def cue_targets(samples: list[Sample], stream: str) -> torch.Tensor:
    """The (B, C) cue values ``stream``'s tower learns to read off ``samples``; a sample without them is an
    error naming it (nothing is silently skipped)."""
    modality, names = STREAM_CUES[stream]
    rows = []
    for sample in samples:
        values = (sample.meta or {}).get("cues", {}).get(modality, {})
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"{sample.id}: tower pre-training needs meta['cues']['{modality}'] with {missing} "
                             "(the generated benchmark's clips have them)")
        rows.append([float(values[name]) for name in names])
    return torch.tensor(rows)


def _stream_loss(policy: Policy, heads: torch.nn.ModuleDict, clips, samples: list[Sample]) -> dict[str, torch.Tensor]:
    """Mean squared error of each stream's head on the mean of each clip's tokens."""
    tokens = policy.media_tokens(policy.prepare(clips))
    losses = {}
    for stream, head in heads.items():
        rows = [i for i, t in enumerate(tokens[stream]) if len(t)]
        if not rows:
            continue
        pooled = torch.stack([tokens[stream][i].mean(dim=0) for i in rows]).float()  # (B', D)
        target = cue_targets([samples[i] for i in rows], stream).to(pooled.device)  # (B', C)
        losses[stream] = torch.nn.functional.mse_loss(head(pooled), target)
    return losses


def train_towers(policy: Policy, samples: list[Sample], loader: ClipLoader, config: TowerConfig,
                 output_dir: str | Path, base_model: str | None = None) -> TrainResult:
    """Train the towers, projectors and media norm (the language model frozen) for ``config.steps`` batches
    of ``samples`` (passes in a seeded order); save the whole model to ``output_dir/final`` (its card names
    ``base_model``), the loss curve to ``output_dir/metrics.jsonl`` (a progress bar meanwhile) and the run's
    record."""
    if not hasattr(policy, "media_tokens"):
        raise TypeError(f"tower pre-training needs a policy with media_tokens(); the {policy.family} policy "
                        "has none")
    for stream in STREAM_CUES:
        cue_targets(samples, stream)   # every sample checked before the first step
    out = Path(output_dir)
    write_run_record(out, config)
    seed_everything(config.seed)
    set_trainable_parts(policy, config.trainable)
    width = policy.thinker.config.text_config.hidden_size
    heads = torch.nn.ModuleDict({stream: torch.nn.Linear(width, len(names))
                                 for stream, (_, names) in STREAM_CUES.items()}).to(policy.device)
    optimizer, scheduler = build_optimizer(policy, config.optim, config.steps)
    head_optimizer = torch.optim.AdamW(heads.parameters(), lr=config.optim.lr)
    policy.module.train()
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    tracker = RunTracker(out, config.steps, description="towers", postfix_keys=("loss/video", "loss/audio"))
    skipped, views, start = 0, 0, time.perf_counter()
    for step in range(1, config.steps + 1):
        while len(order) < config.clips_per_step:
            order += rng.permutation(len(samples)).tolist()
        batch, order = [samples[i] for i in order[:config.clips_per_step]], order[config.clips_per_step:]
        loaded = loader.load_many(batch)
        skipped += len(loaded.failures)
        views += len(loaded.clips)
        if not loaded.clips:
            continue
        losses = _stream_loss(policy, heads, loaded.clips, loaded.kept)
        plain_update(policy, sum(losses.values()), [optimizer, head_optimizer], scheduler, config.optim.max_grad_norm,
                     "tower pre-training", step)
        if step % config.log_every == 0 or step == config.steps:
            tracker.log(step, {f"loss/{stream}": value.item() for stream, value in losses.items()})
    if skipped:
        logger.warning("tower pre-training: %d clip(s) could not be decoded and were skipped", skipped)
    tracker.close()
    policy.module.eval()
    with atomic_dir(out / "final") as tmp:
        policy.save(tmp, card=CardInfo(base_model=base_model, recipe="towers", steps=config.steps))
    return TrainResult(output_dir=out, final_model=out / "final", steps=config.steps,
                       clip_views=views, wall_seconds=time.perf_counter() - start,
                       skipped_clips=skipped)
