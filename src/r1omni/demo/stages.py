"""The demo's training stages: the two recipes as the demo runs them (:func:`run_sft`, :func:`run_grpo`),
each stage run once and reused after (:func:`train_once`), and the starting points every compared recipe
shares (:func:`train_starting_points`: random init, the two-phase base, the cold start)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from r1omni.atomic import atomic_dir, atomic_write_text, is_complete
from r1omni.clips import SAMPLE_QUESTION, ClipLoader, MediaCache
from r1omni.demo.config import SEPARATOR, DemoConfig, StageBudget
from r1omni.models import SamplingConfig, init_preset, load_policy
from r1omni.schema import read_samples
from r1omni.synth.text import corpus as synth_corpus
from r1omni.synth.text import reading_practice
from r1omni.train.checkpoint import TrainResult
from r1omni.train.grpo import GRPOConfig, LossConfig, MaskedModalityConfig, train_grpo
from r1omni.train.language import LanguageConfig, train_language
from r1omni.train.setup import OptimConfig
from r1omni.train.sft import SFTConfig, train_sft
from r1omni.train.towers import TOWER_PARTS, TowerConfig, train_towers

logger = logging.getLogger(__name__)

__all__ = ["run_sft", "run_grpo", "run_language", "run_towers", "grpo_steps", "train_starting_points", "train_once",
           "Stages"]


def run_sft(config: DemoConfig, model: str, data: Path, target: str, out: Path, budget: StageBudget,
         epochs: float = 1.0, prompt: str | None = None, snapshot_steps: list[int] | None = None,
         schedule: str = "cosine", media: MediaCache | None = None,
         modality_dropout: dict[str, float] | None = None) -> TrainResult:
    sft = SFTConfig(model=model, data=str(data), output_dir=str(out), target=target, prompt=prompt or config.prompt,
                    max_steps=budget.steps or None, epochs=epochs, clips_per_step=config.clips_per_step,
                    trainable=budget.trainable,
                    optim=OptimConfig(lr=budget.lr, schedule=schedule, warmup_ratio=0.05), seed=config.seed,
                    log_every=5, num_threads=config.threads, snapshot_steps=snapshot_steps or [],
                    modality_dropout=modality_dropout or {})
    logger.info("SFT (%s) from %s", target, model)
    return train_sft(sft, media=media)


def run_language(config: DemoConfig, model: Path, out: Path) -> TrainResult:
    """The base's first phase: the LLM reads random subtitles back (text only, no clip)."""
    language = LanguageConfig(steps=config.language.steps, seed=config.seed)
    language.optim = replace(language.optim, lr=config.language.lr)   # the library's schedule, the demo's rate
    logger.info("language pre-training from %s", model)
    return train_language(load_policy(model), reading_practice, language, out, base_model=str(model))


def run_towers(config: DemoConfig, model: Path, data: Path, out: Path, media: MediaCache | None = None
               ) -> TrainResult:
    """The base's first phase: the towers learn to measure the clips' face and voice cues (the LLM frozen)."""
    policy = load_policy(model)
    towers = TowerConfig(steps=config.towers.steps, seed=config.seed, trainable=config.towers.trainable or TOWER_PARTS)
    towers.optim = replace(towers.optim, lr=config.towers.lr)   # the library's schedule, the demo's rate
    logger.info("tower pre-training from %s", model)
    return train_towers(policy, read_samples(data), ClipLoader.for_policy(policy, prompt=config.prompt, cache=media),
                        towers, out, base_model=str(model))


def grpo_steps(config: DemoConfig, train_clips: int) -> int:
    """GRPO's steps: ``grpo.steps``, or enough for ``grpo_epochs`` passes over the training split."""
    return config.grpo.steps or math.ceil(config.grpo_epochs * train_clips / config.grpo_clips_per_step)


def run_grpo(config: DemoConfig, model: str, data: Path, out: Path, rewards: dict[str, float] | None = None,
          steps: int | None = None, snapshot_steps: list[int] | None = None,
          media: MediaCache | None = None) -> TrainResult:
    grpo = GRPOConfig(model=model, data=str(data), output_dir=str(out), prompt=config.prompt,
                      rewards=rewards or {"accuracy": 1.0, "format": 1.0},
                      num_generations=config.grpo_generations, clips_per_step=config.grpo_clips_per_step,
                      gradient_accumulation_steps=1, max_steps=steps or grpo_steps(config, len(read_samples(data))),
                      sampling=SamplingConfig(max_new_tokens=config.max_new_tokens, do_sample=True,
                                              temperature=config.grpo_temperature, top_k=50, top_p=1.0),
                      beta=config.grpo_beta, loss=LossConfig(), trainable=config.grpo.trainable,
                      masked_modality=MaskedModalityConfig(**config.grpo_masked_modality),
                      optim=OptimConfig(lr=config.grpo.lr, schedule="constant", warmup_ratio=0.0),
                      seed=config.seed, log_every=1, sample_every=25, num_threads=config.threads,
                      snapshot_steps=snapshot_steps or [])
    return train_grpo(grpo, media=media)


@dataclass
class Stages:
    """What stage 2-5 produced: each variant's model folder and its budget (clip-views, generated tokens,
    wall seconds); ``media`` holds the decoded clips, so that every stage and variant of the run decodes a
    file once (a large share of training and evaluation time on these small clips)."""

    models: dict[str, Path] = field(default_factory=dict)
    budgets: dict[str, dict] = field(default_factory=dict)
    media: MediaCache = field(default_factory=MediaCache)


def train_once(runs: Path, stages: Stages, name: str, say, train: Callable[[], TrainResult]) -> None:
    """Run a training stage unless a finished run of it is already there; record its budget."""
    final, marker = runs / name / "final", runs / name / "result.json"
    if is_complete(final) and marker.is_file():
        stages.models[name], stages.budgets[name] = final, json.loads(marker.read_text())
        say(f"   {name}: reusing {final}")
        return
    if (runs / name).exists():
        shutil.rmtree(runs / name)
    result = train()
    budget = {"clip_views": result.clip_views, "steps": result.steps, "generated_tokens": result.generated_tokens,
              "wall_seconds": result.wall_seconds}
    atomic_write_text(marker, json.dumps(budget))
    stages.models[name], stages.budgets[name] = final, budget
    say(f"   {name}: {result.steps} steps, {result.clip_views} clip-views, "
        f"{result.generated_tokens} generated tokens, {result.wall_seconds:.0f} s")


def train_starting_points(config: DemoConfig, out: Path, manifests: dict[str, Path], say, stage=None,
                          done=None) -> Stages:
    """Stages 2-3, what the compared recipes start from: random init, the base and the cold start."""
    stage = stage or (lambda key, title: (say(f"{SEPARATOR}\n{title}"), None))
    done = done or (lambda ticket: None)
    models, runs = out / "models", out / "runs"
    stages = Stages()
    towers = "towers measuring face and voice cues, " if config.towers.steps else ""
    reading = "reading subtitles back (text only), " if config.language.steps else ""
    ticket = stage("base", f"2/8 tiny model: random init, then base pre-training: {towers}{reading}cue descriptions, "
                           "then instruction data (no face / voice -> emotion mapping)")
    init_dir = models / "init"
    if not is_complete(init_dir):
        policy = init_preset(config.model_preset, seed=config.seed, corpus=synth_corpus(), **_model_overrides(config))
        with atomic_dir(init_dir) as tmp:
            policy.save(tmp)
        del policy
    stages.models["random_init"], stages.budgets["random_init"] = init_dir, {"clip_views": 0}
    say(f"   {config.model_preset}: {sum(p.numel() for p in load_policy(init_dir).module.parameters()) / 1e6:.2f}M "
        "parameters")
    start = init_dir
    if config.towers.steps:
        train_once(runs, stages, "towers", say, lambda: run_towers(config, init_dir, manifests["pretrain"],
                                                                   runs / "towers", stages.media))
        start = stages.models.pop("towers")
    if config.language.steps:
        train_once(runs, stages, "language", say, lambda: run_language(config, start, runs / "language"))
        start = stages.models.pop("language")
    if config.perception.steps:
        train_once(runs, stages, "perception", say, lambda: run_sft(
            config, str(start), manifests["pretrain"], "description", runs / "perception", config.perception,
            prompt="describe", media=stages.media))
        start = stages.models.pop("perception")
    train_once(runs, stages, "base", say, lambda: run_sft(
        config, str(start), manifests["pretrain"], "instruction", runs / "base", config.pretrain,
        prompt=SAMPLE_QUESTION, media=stages.media))
    for phase in ("towers", "language", "perception"):   # the base's budget counts every one of its phases
        if phase in stages.budgets:
            spent = stages.budgets.pop(phase)
            stages.budgets["base"] = {key: value + spent.get(key, 0) for key, value in stages.budgets["base"].items()}
    done(ticket)

    ticket = stage("cold_start_sft", "3/8 cold-start SFT on the reasoning split (EMER-SFT's role)")
    train_once(runs, stages, "cold_start_sft", say, lambda: run_sft(
        config, str(stages.models["base"]), manifests["cold_start"], "reasoning", runs / "cold_start_sft",
        config.cold_start, media=stages.media))
    done(ticket)
    return stages


def _model_overrides(config: DemoConfig) -> dict:
    """The preset fields the demo config changes (none by default: the preset's model as it is)."""
    overrides: dict = {"media_norm": True} if config.media_norm else {}
    if config.frame_size:
        overrides["frame_size"] = config.frame_size
    return overrides
