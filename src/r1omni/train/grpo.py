"""GRPO with verifiable rewards (RLVR), as R1-Omni trains its policy, top to bottom.

Per optimiser step, for each micro-batch of clips:
  1. rollout: G completions per clip (temperature, top-k/top-p), media encoded once per clip;
  2. rewards: R = Σ weight · reward_fn(completions, **columns) (default accuracy + format; columns:
     label, subtitle and the samples' meta, e.g. the benchmark's true cues for ``grounding``);
  3. advantages normalised within each clip's group: (r − mean_G) / (std_G + 1e-4);
  4. the frozen reference's log-probs, for the k3 KL term (β);
then the loss (``r1omni.train.losses.policy_loss``) and one optimiser update (or μ updates with
PPO clipping when ``loss.num_iterations`` > 1).

Optionally (``masked_modality.weight`` > 0; off by default) step 4 also scores the rollout's own
completions under each clip without its video and / or audio, and the loss adds PAPO's implicit
perception term (``r1omni.train.losses.masked_modality_loss``): the KL between the full-clip and the
masked-clip policy, maximised, with an entropy penalty and a per-token cap against KL hacking. At
weight 0 nothing of it runs: no masked forward, the same loss, the same logged keys.

The defaults are the paper's (TRL 0.14 GRPO as R1-Omni ran it): per-sequence mean, one update
per rollout, β = 0.04, G = 8, lr 1e-6 with linear decay, T = 1.0, top-k 50, 512 new tokens. One
deliberate difference: the format reward is r1omni's strict check (one non-empty think block and
one non-empty answer block) unless ``format_paper_regex`` is set; the released regex also pays
for an empty ``<think></think>``, which lets RL shrink the reasoning to nothing.

Each process samples and scores its own clips, so a group never spans processes; gradients are
averaged by accelerate (DDP or DeepSpeed).

Shapes: B clips per micro-batch, G completions per clip, N = B·G rows, C completion tokens.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from r1omni.clips import REMOVAL_METHODS, ClipLoader, MediaCache, remove_modalities
from r1omni.models import ClipInput, Policy, PreparedBatch, SamplingConfig
from r1omni.rewards import RewardFunction, WeightedReward, resolve_rewards
from r1omni.schema import Sample
from r1omni.train.checkpoint import TrainResult, save_checkpoint, save_final, save_snapshot, training_card
from r1omni.train.losses import (
    ADVANTAGE_SCALES,
    AGGREGATIONS,
    MaskedModalityOutput,
    group_advantages,
    masked_modality_loss,
    policy_loss,
)
from r1omni.train.rollout import HFGenerateEngine, RolloutEngine
from r1omni.train.setup import (
    PAPER_TRAINABLE_PARTS,
    OptimConfig,
    Run,
    RunSettings,
    check_step_settings,
    clip_gradients,
    micro_batch,
    prepare_run,
)
from r1omni.train.tracking import RunTracker, check_finite
from r1omni.train.vllm_engine import VLLMEngine, VLLMOptions
from r1omni.yamlconfig import config_to_dict

__all__ = ["GRPOConfig", "LossConfig", "MaskedModalityConfig", "train_grpo", "masked_modality_logprobs",
           "PAPER_GRPO_PARTS", "ENGINES", "REMOVABLE_MODALITIES"]

logger = logging.getLogger(__name__)

# In R1-Omni's GRPO stage nothing re-freezes the gate's BERT encoder, so it trains too.
PAPER_GRPO_PARTS = PAPER_TRAINABLE_PARTS + ("gate_text_encoder",)

# Rollout engine name -> factory(accelerator, config). vLLM itself is imported only when its engine starts.
ENGINES: dict[str, Callable[[Accelerator, "GRPOConfig"], RolloutEngine]] = {
    "hf": lambda accelerator, config: HFGenerateEngine(accelerator),
    "vllm": lambda accelerator, config: VLLMEngine(accelerator, config.vllm, seed=config.seed),
}


# What GRPO's masked-modality term can remove from a clip.
REMOVABLE_MODALITIES = ("video", "audio")


def _paper_sampling() -> SamplingConfig:
    return SamplingConfig(max_new_tokens=512, do_sample=True, temperature=1.0, top_k=50, top_p=1.0)


def _paper_optim() -> OptimConfig:
    return OptimConfig(lr=1e-6, schedule="linear", warmup_ratio=0.0, max_grad_norm=1.0)


@dataclass
class LossConfig:
    """How completions' advantages become a loss (see ``r1omni.train.losses``)."""

    aggregation: str = "grpo"
    """grpo (per-sequence mean, paper), dapo (token-level mean) or dr_grpo (constant normaliser)."""
    advantage_scale: str = "group"
    """group (paper), batch, or none (Dr. GRPO)."""
    num_iterations: int = 1
    """Updates per rollout (μ); > 1 turns on PPO-style clipping against the rollout policy."""
    epsilon_low: float = 0.2
    epsilon_high: float | None = None
    """Upper clip (DAPO's clip-higher uses 0.28); None = epsilon_low."""
    importance_cap: float = 3.0
    """Cap of the per-token importance weight when an external sampler supplies log-probs."""

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"loss.aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.advantage_scale not in ADVANTAGE_SCALES:
            raise ValueError(f"loss.advantage_scale must be one of {ADVANTAGE_SCALES}, got {self.advantage_scale!r}")
        if self.num_iterations < 1:
            raise ValueError("loss.num_iterations must be >= 1")


@dataclass
class MaskedModalityConfig:
    """PAPO's implicit perception term for omni clips (issue #26, item 4), off unless ``weight`` > 0.

    The loss subtracts ``weight`` times KL(π(·|clip) ‖ π(·|clip without m)), averaged over ``modalities``,
    estimated per token (k3) on the rollout's own completions, and adds ``entropy_weight`` times the
    full-clip policy's entropy estimate; each token's KL counts up to ``kl_cap``. Why both guards: see
    :func:`r1omni.train.losses.masked_modality_loss`. It amplifies a dependence the model already has and
    cannot create one (a model that answers alike without the video has KL 0 and no gradient from it), so
    fix the media scale and the data first (``shared/notes/levers-2026-12.md`` section 2.4).
    """

    weight: float = 0.0
    """γ. 0 = off: no masked forward at all, the loss and metrics as without this option (PAPO: 0.01-0.02)."""
    modalities: list[str] = field(default_factory=lambda: ["video"])
    """The modalities removed, each in a forward of its own: "video", "audio"."""
    method: str = "blank"
    """How a modality is removed (``r1omni.clips.remove_modalities``): "blank" (grey frames, silence; the
    prompt keeps its shape) or "omit" (its placeholder leaves the prompt)."""
    kl_cap: float | None = 0.2
    """Per-token cap of the KL (PAPO's clipping value); None = uncapped."""
    entropy_weight: float = 0.03
    """η of the entropy penalty on the full-clip policy (PAPO's 0.03); applies only while ``weight`` > 0."""

    def __post_init__(self) -> None:
        if self.weight < 0 or self.entropy_weight < 0:
            raise ValueError("masked_modality.weight and entropy_weight must be >= 0 (the term is maximised by "
                             "its sign in the loss; a negative weight would minimise it)")
        unknown = [m for m in self.modalities if m not in REMOVABLE_MODALITIES]
        if unknown or not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"masked_modality.modalities must name distinct modalities of {REMOVABLE_MODALITIES}, "
                             f"got {self.modalities}")
        if self.method not in REMOVAL_METHODS:
            raise ValueError(f"masked_modality.method must be one of {REMOVAL_METHODS}, got {self.method!r}")
        if self.kl_cap is not None and self.kl_cap <= 0:
            raise ValueError("masked_modality.kl_cap must be > 0, or null for no cap")


@dataclass
class GRPOConfig(RunSettings):
    """Settings of one GRPO run; defaults reproduce the paper's recipe. The run-control fields (seed,
    save_every, resume, ...) are :class:`r1omni.train.setup.RunSettings`'."""

    model: str
    """Initial policy (the cold-start model): a saved folder or ``preset:NAME``."""
    data: str
    """Manifest JSONL of labelled clips (reasoning not needed)."""
    output_dir: str
    reference: str | None = None
    """Reference model for the KL term; None = the initial policy."""
    prompt: str = "train"
    use_subtitle: bool = True
    trainable: list[str] | None = None
    """Parts that train; None = the paper's GRPO choice (LLM, projectors, gate and its text encoder)."""
    num_generations: int = 8
    """G, completions per clip."""
    clips_per_step: int = 1
    """Clips per process per micro-batch."""
    gradient_accumulation_steps: int = 2
    epochs: float = 2.0
    max_steps: int | None = None
    sampling: SamplingConfig = field(default_factory=_paper_sampling)
    rewards: dict[str, float] = field(default_factory=lambda: {"accuracy": 1.0, "format": 1.0})
    """Reward name -> weight; names from ``r1omni.rewards.REWARD_FUNCTIONS`` or passed to ``train_grpo``."""
    accuracy_normalize: bool = False
    """Accuracy by synonym-normalised label instead of the paper's exact word match."""
    format_paper_regex: bool = False
    """Use the released format regex instead of r1omni's strict check (see module docstring)."""
    beta: float = 0.04
    """KL weight; 0 drops the reference model entirely."""
    loss: LossConfig = field(default_factory=LossConfig)
    masked_modality: MaskedModalityConfig = field(default_factory=MaskedModalityConfig)
    """PAPO's masked-modality KL term (off by default)."""
    optim: OptimConfig = field(default_factory=_paper_optim)
    rollout_engine: str = "hf"
    """"hf" (the policy's own generate) or "vllm" (Qwen2.5-Omni on a GPU; see ``vllm``)."""
    vllm: VLLMOptions = field(default_factory=VLLMOptions)

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2: GRPO compares completions within a group")
        if self.clips_per_step < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("clips_per_step and gradient_accumulation_steps must be >= 1")
        check_step_settings(self.max_steps, self.epochs)
        super().__post_init__()
        if not self.sampling.do_sample:
            raise ValueError("GRPO rollouts must sample: set sampling.do_sample=true (greedy gives G identical "
                             "completions and zero advantages)")
        if not self.rewards:
            raise ValueError("rewards must name at least one reward function")
        if self.rollout_engine not in ENGINES:
            raise ValueError(f"rollout_engine must be one of {list(ENGINES)}, got {self.rollout_engine!r}")
        if self.rollout_engine == "vllm" and not self.vllm.model:
            raise ValueError("rollout_engine=vllm needs vllm.model=PATH: a full Qwen2.5-Omni folder with the "
                             "policy's shapes (vLLM cannot load a thinker-only folder)")
        if self.rollout_engine == "vllm" and self.lora is not None:
            raise ValueError("rollout_engine=vllm samples from full weights it is sent, not LoRA adapters; use "
                             "rollout_engine=hf with lora, or train without lora")
        if self.beta < 0:
            raise ValueError("beta must be >= 0")
        if self.loss.aggregation == "dr_grpo" and self.loss.advantage_scale != "none":
            logger.warning("dr_grpo is usually run with loss.advantage_scale=none (unscaled advantages)")


@dataclass
class _Run(Run):
    """Everything a step needs, built once by :func:`_setup`: the set-up SFT shares, the rollout engine and
    the bound rewards."""

    engine: RolloutEngine
    rewards: list[WeightedReward]


@dataclass
class _ScoredRollout:
    """One micro-batch's completions with everything the update needs (torchtune's GRPOTrajectory)."""

    batch: PreparedBatch
    ids: torch.Tensor            # (N, C)
    mask: torch.Tensor           # (N, C)
    clip_index: torch.Tensor     # (N,)
    advantages: torch.Tensor     # (N,)
    ref_logp: torch.Tensor | None    # (N, C)
    old_logp: torch.Tensor | None    # (N, C), only when μ > 1
    token_weights: torch.Tensor | None  # (N, C), only with an external sampler
    samples: list[dict]          # one group's outputs with their rewards, for the sample log
    masked_logp: dict[str, torch.Tensor] | None = None  # modality -> (N, C), only with the masked-modality term


@dataclass
class _Update:
    kl: float
    clip_fraction: float
    loss: float
    grad_norm: float
    lr: float
    masked: dict[str, float] = field(default_factory=dict)
    """The masked-modality term's logged numbers (empty when it is off)."""


def train_grpo(config: GRPOConfig, reward_functions: Mapping[str, RewardFunction] | None = None,
               media: MediaCache | None = None, *, policy: Policy | None = None,
               loader: ClipLoader | None = None) -> TrainResult:
    """Train ``config.model`` with GRPO on ``config.data``; returns where the final model is and the budget.

    ``reward_functions`` adds the caller's own rewards (TRL's contract: ``(completions, **columns) ->
    list[float]``, here called with the columns ``label``, ``subtitle`` and every ``meta`` key of the
    samples), weighted by name in ``config.rewards``. Runs as one
    process or under ``accelerate launch`` (each process samples its own clips; gradients are
    averaged). Each process seeds with ``seed + rank`` so that processes draw different samples.
    ``policy`` / ``loader`` replace the policy opened from ``config.model`` / the clip loader built for
    it (:func:`r1omni.train.setup.prepare_run`); with ``policy`` the reference is a frozen copy of it
    unless ``config.reference`` names one.
    """
    started = time.perf_counter()
    run = _setup(config, reward_functions, media, policy, loader)
    start_step = run.start_step
    skipped, generated = run.resumed.get("skipped_clips", 0), run.resumed.get("generated_tokens", 0)
    tracker = RunTracker(Path(config.output_dir), run.total_steps, start_step,
                         enabled=run.accelerator.is_main_process, description="grpo",
                         postfix_keys=("reward", "accuracy", "format", "kl"), accelerator=run.accelerator,
                         report_to=config.report_to, config=config_to_dict(config))
    # Train mode for the loss forward, as in SFT (a folder loaded with from_pretrained starts in
    # eval mode, a preset in train mode); the rollout engine switches to eval while sampling.
    run.policy.module.train()
    merge = config.lora is not None and config.lora.merge   # how the saved models hold LoRA adapters
    for step in range(start_step + 1, run.total_steps + 1):
        timings = dict.fromkeys(("rollout", "reference", "policy", "optimizer")
                                + (("masked",) if config.masked_modality.weight > 0 else ()), 0.0)
        stats: dict[str, list[float]] = defaultdict(list, {name: [] for name in (
            "reward", "reward_std", "groups_with_signal", "completion_length", *(r.name for r in run.rewards))})
        rollouts = []
        for micro in range(config.gradient_accumulation_steps):
            clips, samples, failed = micro_batch(run, step, micro)
            skipped += failed
            if clips:
                rollouts.append(_collect(run, step, clips, samples, stats, timings))
        generated += sum(int(r.mask.sum()) for r in rollouts)
        update = _update(run, step, rollouts, timings)
        if step % config.log_every == 0 or step == run.total_steps:
            tracker.log(step, _step_metrics(stats, update, timings, skipped, rollouts))
        if config.sample_every and step % config.sample_every == 0 and rollouts:
            tracker.samples(step, rollouts[0].samples)
        if config.save_every and step % config.save_every == 0 and step < run.total_steps:
            save_checkpoint(run.accelerator, run.policy, Path(config.output_dir), step, config_to_dict(config),
                            {"skipped_clips": skipped, "generated_tokens": generated}, merge=merge)
        if step in config.snapshot_steps:
            save_snapshot(run.accelerator, run.policy, Path(config.output_dir), step, merge=merge,
                          card=training_card(config, "grpo", step))
    tracker.close()
    final = save_final(run.accelerator, run.policy, Path(config.output_dir), merge=merge,
                       card=training_card(config, "grpo", run.total_steps))
    clip_views = run.total_steps * run.order.global_batch * config.gradient_accumulation_steps
    return TrainResult(Path(config.output_dir), final, run.total_steps, clip_views, time.perf_counter() - started,
                       skipped, generated)


def _setup(config: GRPOConfig, reward_functions: Mapping[str, RewardFunction] | None,
           media: MediaCache | None = None, policy: Policy | None = None, loader: ClipLoader | None = None) -> _Run:
    """Bound rewards (checked before the run folder is touched), the set-up SFT shares on labelled samples
    with GRPO's choices (its default parts, a frozen reference when β > 0, a seed per process, μ updates per
    step), then the rollout engine."""
    rewards = resolve_rewards(config.rewards, accuracy_normalize=config.accuracy_normalize,
                              format_paper_regex=config.format_paper_regex, extra=reward_functions)

    def check_labels(samples: list[Sample]) -> None:
        unlabelled = [s.id for s in samples if not s.label]
        if unlabelled:
            raise ValueError(f"{config.data}: {len(unlabelled)} sample(s) have no label (e.g. {unlabelled[0]!r}); "
                             "GRPO's accuracy reward needs labels")

    run = prepare_run(config, check_labels, policy=policy, loader=loader, media=media, default_parts=PAPER_GRPO_PARTS,
                      reference=(config.reference or True) if config.beta > 0 else False, seed_per_process=True,
                      updates_per_step=config.loss.num_iterations)
    engine = ENGINES[config.rollout_engine](run.accelerator, config)
    return _Run(**vars(run), engine=engine, rewards=rewards)


def _reward_columns(samples: list[Sample], rows: list[int]) -> dict[str, list]:
    """The dataset columns every reward receives (TRL's contract), one value per completion row: label,
    subtitle and each key of the samples' ``meta`` (e.g. the benchmark's true ``cues``), None where absent."""
    keys = sorted({key for sample in samples for key in sample.meta} - {"label", "subtitle"})
    per_clip = [{"label": s.label, "subtitle": s.subtitle, **{key: s.meta.get(key) for key in keys}} for s in samples]
    return {name: [per_clip[row][name] for row in rows] for name in per_clip[0]}


def _collect(run: _Run, step: int, clips: list[ClipInput], samples: list[Sample], stats: dict[str, list[float]],
             timings: dict[str, float]) -> _ScoredRollout:
    """Steps 1-4 for one micro-batch: rollout, rewards, group advantages, reference (and rollout) log-probs."""
    config, device, G = run.config, run.accelerator.device, run.config.num_generations
    mu = config.loss.num_iterations
    # 1. rollout: G completions per clip
    tick = time.perf_counter()
    batch = run.policy.prepare(clips).to(device)
    rollout = run.engine.generate(run.policy, batch, G, config.sampling, clips=clips)
    completions = rollout.completions
    ids, mask = completions.ids.to(device), completions.mask.to(device)                  # (N, C)
    clip_index = completions.clip_index.to(device)                                       # (N,)
    timings["rollout"] += time.perf_counter() - tick
    # 2. rewards: R = sum of weight * reward(completions, **columns)
    columns = _reward_columns(samples, clip_index.tolist())
    total = torch.zeros(len(completions.texts))                                          # (N,)
    for reward in run.rewards:
        values = torch.tensor(reward.function(completions.texts, **columns), dtype=torch.float32)
        total += reward.weight * values
        stats[reward.name].append(values.mean().item())
    check_finite(step, reward=total.sum().item())
    # 3. advantages normalised within each clip's group
    advantages = group_advantages(total, G, config.loss.advantage_scale).to(device)      # (N,)
    group_std = total.view(-1, G).std(dim=1)                                             # (B,)
    stats["reward"].append(total.mean().item())
    stats["reward_std"].append(group_std.mean().item())
    stats["groups_with_signal"].append((group_std > 0).float().mean().item())
    stats["completion_length"].append(mask.sum(dim=1).float().mean().item())
    # 4. reference log-probs (KL), and the rollout policy's when μ > 1 or an external sampler needs weights
    tick = time.perf_counter()
    with torch.no_grad(), run.accelerator.autocast():
        ref_logp = run.reference.token_logprobs(batch, ids, clip_index) if run.reference is not None else None
        old_logp = (run.policy.token_logprobs(batch, ids, clip_index)
                    if mu > 1 or rollout.sampler_logprobs is not None else None)          # (N, C)
    token_weights = None
    if rollout.sampler_logprobs is not None:
        sampler = rollout.sampler_logprobs.to(device)                                    # (N, C)
        # NaN: a token the sampler returned no log-prob for (weight 1).
        token_weights = torch.where(torch.isnan(sampler), torch.ones_like(sampler),
                                    torch.exp(old_logp - sampler).clamp(max=config.loss.importance_cap))
        old_logp = old_logp if mu > 1 else None
        stats["importance_weight"].append((token_weights * mask).sum().item() / max(mask.sum().item(), 1))
    timings["reference"] += time.perf_counter() - tick
    masked_logp = None
    settings = config.masked_modality
    if settings.weight > 0:   # PAPO's term: the same completions under each clip without a modality
        tick = time.perf_counter()
        with run.accelerator.autocast():
            masked_logp = masked_modality_logprobs(run.policy, clips, ids, clip_index, settings.modalities,
                                                   settings.method, device)
        timings["masked"] += time.perf_counter() - tick
    group = [{"label": columns["label"][i], "reward": float(total[i]), "output": completions.texts[i]}
             for i in range(G)]
    return _ScoredRollout(batch, ids, mask, clip_index, advantages, ref_logp, old_logp, token_weights, group,
                          masked_logp)


def masked_modality_logprobs(policy: Policy, clips: list[ClipInput], ids: torch.Tensor, clip_index: torch.Tensor,
                             modalities: list[str], method: str = "blank",
                             device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Log-probabilities (N, C) of the rollout's own completions ``ids`` under each clip without one of
    ``modalities``, without gradient: computed once per rollout, as PAPO does by default."""
    scored = {}
    for modality in modalities:
        removed = [remove_modalities(clip, video=modality == "video", audio=modality == "audio", method=method)
                   for clip in clips]
        batch = policy.prepare(removed)
        with torch.no_grad():
            scored[modality] = policy.token_logprobs(batch.to(device) if device is not None else batch, ids,
                                                     clip_index)                          # (N, C)
    return scored


def _update(run: _Run, step: int, rollouts: list[_ScoredRollout], timings: dict[str, float]) -> _Update:
    """Step 5: μ passes over the step's rollouts (PPO clipping when μ > 1), each one optimiser update."""
    config, accelerator, module = run.config, run.accelerator, run.policy.module
    kl, clip_fraction, losses, masked = [], [], [], []
    lr = run.scheduler.get_last_lr()[0]   # the rate this step's (first) update uses, logged
    grad_norm = None
    for _ in range(config.loss.num_iterations):
        tick = time.perf_counter()
        for position, r in enumerate(rollouts):
            sync = position == len(rollouts) - 1    # all-reduce gradients once, after the last micro-batch
            with contextlib.nullcontext() if sync else accelerator.no_sync(module):
                with accelerator.autocast():
                    logp = run.policy.token_logprobs(r.batch, r.ids, r.clip_index)      # (N, C)
                out = policy_loss(logp, r.advantages, r.mask, old_logp=r.old_logp, ref_logp=r.ref_logp,
                                  beta=config.beta, epsilon_low=config.loss.epsilon_low,
                                  epsilon_high=config.loss.epsilon_high, aggregation=config.loss.aggregation,
                                  max_completion_length=config.sampling.max_new_tokens,
                                  token_weights=r.token_weights)
                loss = out.loss
                if r.masked_logp is not None:
                    term = _masked_term(config, logp, r)
                    loss = loss + term.loss
                    masked.append(term)
                check_finite(step, loss=loss.item())
                accelerator.backward(loss / len(rollouts))
            kl.append(out.kl)
            clip_fraction.append(out.clip_fraction)
            losses.append(loss.item())
        timings["policy"] += time.perf_counter() - tick
        tick = time.perf_counter()
        grad_norm = clip_gradients(accelerator, module, config.optim.max_grad_norm)
        if grad_norm is not None:
            check_finite(step, grad_norm=grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        timings["optimizer"] += time.perf_counter() - tick
    return _Update(_mean(kl), _mean(clip_fraction), _mean(losses), grad_norm or 0.0, lr, _masked_metrics(masked))


def _masked_term(config: GRPOConfig, logp: torch.Tensor, rollout: _ScoredRollout) -> MaskedModalityOutput:
    settings = config.masked_modality
    return masked_modality_loss(logp, rollout.masked_logp, rollout.mask, settings.weight, settings.entropy_weight,
                                settings.kl_cap, config.loss.aggregation, config.sampling.max_new_tokens)


def _masked_metrics(terms: list[MaskedModalityOutput]) -> dict[str, float]:
    """The masked-modality term's per-step numbers: KL and masked entropy per removed modality, the full-clip
    entropy, the share of capped KL values; empty when the term is off."""
    if not terms:
        return {}
    metrics = {f"masked_kl/{m}": _mean([t.kl[m] for t in terms]) for m in terms[0].kl}
    metrics.update({f"masked_entropy/{m}": _mean([t.masked_entropy[m] for t in terms]) for m in terms[0].kl})
    metrics.update(entropy=_mean([t.entropy for t in terms]),
                   masked_kl_capped=_mean([t.capped_fraction for t in terms]))
    return metrics


def _step_metrics(stats: dict[str, list[float]], update: _Update, timings: dict[str, float], skipped: int,
                  rollouts: list[_ScoredRollout]) -> dict[str, float]:
    """The logged row of one step: reward terms, update statistics, throughput and the time split."""
    completion_tokens = sum(float(r.mask.sum()) for r in rollouts)
    metrics = {key: _mean(values) for key, values in stats.items()}
    metrics.update({"kl": update.kl, "clip_fraction": update.clip_fraction, "loss": update.loss,
                    "grad_norm": update.grad_norm, "lr": update.lr, "skipped_clips": skipped,
                    "tokens_per_second": completion_tokens / max(timings["rollout"], 1e-9)})
    metrics.update(update.masked)
    metrics.update({f"time/{name}": seconds for name, seconds in timings.items()})
    return metrics


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
