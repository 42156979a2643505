"""The embedded default: the paper's whole pipeline on the generated benchmark, on a CPU, in minutes.

Top to bottom, each stage reusing what a previous run already finished:

1. generate (or reuse) the benchmark (``r1omni.synth``);
2. build the tiny default model (random init: reported for reference; a media norm after each
   projector, frames at 112 px), pre-train its perception on the pre-training clips' cue descriptions,
   then pre-train it on instruction data that never ties a face or a voice to an emotion word ("base": HumanOmni-0.5B's
   role): describe the clip, the face, the voice, one cue; read the subtitle back; answer the
   emotion question from the subtitle's words alone. Asked the emotion question, the base answers
   in the format, mostly by guessing;
3. cold-start SFT on the reasoning split ("cold_start_sft": EMER-SFT's role);
4. label SFT from the base on the training labels, one epoch ("label_sft": MAFW-DFEW-SFT's role);
5. GRPO from the cold start on the training labels for at least as many clip-views as label SFT
   ("rlvr": R1-Omni's role), and the same run with the grounding reward added ("rlvr_grounding":
   R = accuracy + format + w * grounding, the true cue claims of the reasoning paid for);
6. evaluate every variant on the test splits (in distribution, another style, another style with a
   voice-led modality mix) or, for tuning, on the validation splits: WAR, UAR, format rate,
   accuracy per carrying modality, reasoning quality, paired differences with standard errors;
7. modality attribution of each trained variant on in-distribution clips, where the decisive
   modality is known; then every variant's modality balance (``r1omni.explain.balance``: answers
   changed without the video / the audio, media-to-text token norm ratios, a linear probe of the face
   from the LLM's last prompt state), beside its face-only and voice-only accuracy;
8. a report folder: ``results.json``, ``report.md``, PNG plots, example outputs.

The paper's ordering (RLVR > label SFT > cold start > base) is a hypothesis this run tests, not
something it forces: the numbers are whatever the run measures. Recipes are tuned on the
validation splits (``DemoConfig.eval_splits = VALIDATION_SPLITS``); the test splits are measured
once per recipe.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from r1omni.atomic import atomic_dir, atomic_write_text, is_complete
from r1omni.claims import claim_errors, extract_claims
from r1omni.clips import SAMPLE_QUESTION, ClipLoader, MediaCache
from r1omni.demo.report import write_report
from r1omni.environment import describe_environment
from r1omni.evaluate import EvalOptions, evaluate
from r1omni.explain.attribution import attribute, summarize
from r1omni.explain.balance import measure_balance
from r1omni.labels import get_label_set
from r1omni.metrics import PREDICTIONS
from r1omni.models import SamplingConfig, init_preset, load_policy
from r1omni.schema import Sample, read_samples
from r1omni.synth import generate_benchmark
from r1omni.synth.generate import benchmark_digest
from r1omni.synth.config import TEST_SPLITS, VALIDATION_SPLITS
from r1omni.synth.text import corpus as synth_corpus
from r1omni.train.checkpoint import TrainResult
from r1omni.train.grpo import GRPOConfig, LossConfig, train_grpo
from r1omni.train.setup import OptimConfig
from r1omni.train.sft import SFTConfig, train_sft

__all__ = ["DemoConfig", "StageBudget", "run_demo", "VARIANTS", "PAIRS", "split_key"]

logger = logging.getLogger(__name__)

VARIANTS = ("base", "cold_start_sft", "label_sft", "rlvr", "rlvr_grounding")
# The paired comparisons every table reports: (variant, against).
PAIRS = (("rlvr", "cold_start_sft"), ("rlvr", "label_sft"), ("rlvr_grounding", "rlvr"))
_SEPARATOR = "-" * 78


# Base pre-training trains the whole model: its towers are random (HumanOmni's come pre-trained).
ALL_PARTS = ["llm", "vision_tower", "audio_tower", "vision_projector", "audio_projector"]


def split_key(split: str) -> str:
    """The results' name of a split: ``test_id`` -> ``id``, ``test_mix`` -> ``mix``; validation splits
    keep their names."""
    return split.removeprefix("test_")


@dataclass
class StageBudget:
    """Steps, learning rate and trained parts of one stage (clips per step in ``DemoConfig``)."""

    steps: int
    lr: float
    trainable: list[str] | None = None
    """Model parts that train; None = the paper's choice for that stage."""


@dataclass
class DemoConfig:
    """Everything the demo run decides. ``quick()`` is the ~3-minute variant used by a test."""

    output_dir: str = "demo_out"
    synth_preset: str = "default"
    benchmark_dir: str | None = None
    """Where the benchmark lives; None = OUTPUT_DIR/benchmark."""
    model_preset: str = "qwen2.5-omni-demo"
    seed: int = 0
    threads: int = 2
    """torch CPU threads (measured: 2 beats 1 by ~25% for this ~1M-parameter model on 2 cores)."""
    prompt: str = "train"
    """Every variant is trained and evaluated with the same question (with the format instruction)."""
    clips_per_step: int = 8
    """Clips per SFT step."""
    pretrain: StageBudget = field(default_factory=lambda: StageBudget(steps=700, lr=6e-4, trainable=ALL_PARTS))
    cold_start: StageBudget = field(default_factory=lambda: StageBudget(steps=200, lr=1e-3, trainable=["llm"]))
    label_sft_epochs: float = 1.0
    label_sft: StageBudget = field(default_factory=lambda: StageBudget(steps=0, lr=1e-3, trainable=["llm"]))
    """Its steps come from ``label_sft_epochs`` (one pass over the training split, as MAFW-DFEW-SFT)."""
    grpo_epochs: float = 1.0
    """GRPO's budget in passes over the training split (its steps, unless ``grpo.steps`` is set): at
    least label SFT's, so that the two are compared at the same clip-views."""
    grpo: StageBudget = field(default_factory=lambda: StageBudget(steps=0, lr=1e-4, trainable=["llm"]))
    grpo_clips_per_step: int = 16
    grpo_generations: int = 4
    """G. With 16 clips per step, 64 completions a step as with 8 x 8, twice the clips per second."""
    grpo_beta: float = 0.2
    """β of the KL term to the frozen cold start (the paper: 0.04). At 0.04 the ~1M-parameter policy
    collapsed onto three or four answers, dropping the emotions its cold start got wrong most often;
    measured on the validation splits (same cold starts, RLVR − cold start, val_id / val_ood): seed 0
    +0.095 / +0.052 at 0.04, +0.119 / +0.110 at 0.2; seed 1 -0.029 / +0.014 and +0.014 / +0.062;
    seed 2 +0.019 / -0.019 and +0.043 / +0.100; at 0.5, seed 1 -0.048 / +0.019."""
    grpo_temperature: float = 0.5
    """Rollout temperature. The paper samples at 1.0; measured here, the ~1M-parameter cold start's
    samples at 1.0 were at chance accuracy (so GRPO only learned format and lost 0.2 ID WAR). From
    one cold start, 150 steps: T 0.7 / lr 5e-5 gave greedy ID +0.006 +- 0.028 over the cold start,
    T 0.5 / lr 1e-4 gave +0.091 +- 0.027: near-greedy samples differ where the model is unsure, so
    rewarding the right ones moves its greedy choice."""
    grounding_weight: float = 0.5
    """w of the "RLVR + grounding" row (0 = no such row)."""
    max_new_tokens: int = 100
    eval_splits: tuple[str, ...] = TEST_SPLITS
    """Where every variant is evaluated; ``VALIDATION_SPLITS`` while tuning a recipe."""
    eval_batch_size: int = 64
    attribution_clips: int = 70
    """In-distribution clips used for modality attribution per variant (0 = skip). The modality balance
    takes its answer changes from the same clips (decoding them itself for the base, which attribution
    skips) and its token norms and face probe from the whole in-distribution split."""
    media_norm: bool = True
    """Build the model with a LayerNorm after each media projector at the text embeddings' scale
    (``ThinkerDims.media_norm``): without it video tokens entered the LLM at ~15x the text tokens' norm."""
    frame_size: int | None = 112
    """Side in pixels the model resizes frames to (``ThinkerDims.frame_size``; None: the preset's 56). At 112
    a clip gives the LLM 32 video tokens instead of 8, and the face's parts fall in patches of their own."""
    perception: StageBudget = field(default_factory=lambda: StageBudget(steps=700, lr=6e-4, trainable=ALL_PARTS))
    """Perception pre-training before the base's instruction mix: the pre-training clips with every cue
    described (target ``description``), so that the towers and the LLM learn to see and hear before they
    learn the tasks (0 steps: none). Without it the instruction mix, which spends ~45 % of its clips on
    text-only tasks, left the face out of the LLM's decision (issue #26; README "What made the model see")."""
    label_modality_dropout: dict[str, float] = field(default_factory=dict)
    """``SFTConfig.modality_dropout`` of label SFT, e.g. ``{"audio": 0.5}``: the voice is the easier stream
    and wins the competition for the label unless it is sometimes absent (empty: every clip whole)."""

    def __post_init__(self) -> None:
        self.eval_splits = tuple(self.eval_splits)
        unknown = [s for s in self.eval_splits if s not in TEST_SPLITS + VALIDATION_SPLITS]
        if unknown or not self.eval_splits:
            raise ValueError(f"eval_splits must name splits of {TEST_SPLITS + VALIDATION_SPLITS}, got {unknown}")

    @classmethod
    def quick(cls, output_dir: str = "demo_out_quick", seed: int = 0) -> "DemoConfig":
        return cls(output_dir=output_dir, synth_preset="quick", seed=seed,
                   perception=StageBudget(steps=80, lr=6e-4, trainable=ALL_PARTS),
                   pretrain=StageBudget(steps=80, lr=6e-4, trainable=ALL_PARTS),
                   cold_start=StageBudget(steps=40, lr=1e-3, trainable=["llm"]),
                   attribution_clips=14, eval_batch_size=70)


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
                      optim=OptimConfig(lr=config.grpo.lr, schedule="constant", warmup_ratio=0.0),
                      seed=config.seed, log_every=1, sample_every=25, num_threads=config.threads,
                      snapshot_steps=snapshot_steps or [])
    return train_grpo(grpo, media=media)


_SETTINGS_FILE = "demo_settings.json"


def _forget_stale_results(out: Path, config: DemoConfig, bench: Path, say) -> None:
    """Finished stages are reused on a re-run, but only if they were made with the same demo
    settings and the same benchmark; otherwise models, runs and evaluations start over (a pulled
    recipe change must not be scored with models trained under the old one)."""
    settings = {"demo": {k: v for k, v in asdict(config).items() if k not in ("output_dir", "threads")},
                "benchmark": json.loads((bench / "synth_config.json").read_text())}
    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    previous = out / _SETTINGS_FILE
    made = [name for name in ("models", "runs", "eval") if (out / name).exists()]
    if made and (not previous.is_file() or previous.read_text() != text):
        say(f"   settings differ from the last run in {out}: its models and results are rebuilt")
        for name in made:
            shutil.rmtree(out / name)
    atomic_write_text(previous, text)


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean per-clip difference (a − b) on the same clips (correctness, or a share) and its standard error."""
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    if not n:
        return {"diff": 0.0, "se": 0.0, "n": 0}
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return {"diff": mean, "se": math.sqrt(var / n), "n": n}


def correct(eval_dir: Path) -> dict[str, bool]:
    """Clip id -> answered right (the normalized track), from an evaluation's predictions."""
    rows = [json.loads(line) for line in (eval_dir / PREDICTIONS).read_text().splitlines() if line]
    return {r["id"]: r["error"] is None and r["pred"] == r["label"] for r in rows}


def _hallucinated_share(eval_dir: Path, cues: dict[str, dict]) -> dict[str, float]:
    """Per clip with known cues and at least one cue claim: the share of its claims the true cues contradict."""
    shares = {}
    for line in (eval_dir / PREDICTIONS).read_text().splitlines():
        row = json.loads(line) if line else {}
        if row.get("think") and row["id"] in cues and (claims := extract_claims(row["think"])):
            shares[row["id"]] = len(claim_errors(row["think"], cues[row["id"]])) / len(claims)
    return shares


def _by_carrier(eval_dir: Path, samples: list[Sample]) -> dict[str, float]:
    """Accuracy on the clips each modality mix carries (face only, voice only, both, conflict)."""
    right = correct(eval_dir)
    groups: dict[str, list[bool]] = {}
    for sample in samples:
        if sample.id in right:
            groups.setdefault(sample.meta.get("carrier", "?"), []).append(right[sample.id])
    return {carrier: sum(hits) / len(hits) for carrier, hits in sorted(groups.items())}


@dataclass
class _Stages:
    """What stage 2-5 produced: each variant's model folder and its budget (clip-views, generated tokens,
    wall seconds); ``media`` holds the decoded clips, so that every stage and variant of the run decodes a
    file once (a large share of training and evaluation time on these small clips)."""

    models: dict[str, Path] = field(default_factory=dict)
    budgets: dict[str, dict] = field(default_factory=dict)
    media: MediaCache = field(default_factory=MediaCache)


def _train_once(runs: Path, stages: _Stages, name: str, say, train: Callable[[], TrainResult]) -> None:
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


def run_demo(config: DemoConfig, say: Callable[[str], None]) -> dict:
    """Run (or resume) the whole demo; ``say`` receives progress lines for the user (the CLI prints them)."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench = Path(config.benchmark_dir) if config.benchmark_dir else out / "benchmark"
    timings: dict[str, float] = {}

    def stage(key: str, title: str):
        say(f"{_SEPARATOR}\n{title}")
        return key, time.perf_counter()

    def done(ticket) -> None:
        timings[ticket[0]] = time.perf_counter() - ticket[1]

    ticket = stage("benchmark", f"1/8 benchmark ({config.synth_preset}) in {bench}")
    manifests = generate_benchmark(bench, preset=config.synth_preset, seed=config.seed)
    bench_digest = benchmark_digest(bench)
    say(f"   splits: { {split: len(read_samples(path)) for split, path in manifests.items()} }, "
        f"digest {bench_digest['all']}")
    _forget_stale_results(out, config, bench, say)
    done(ticket)
    stages = _train_stages(config, out, manifests, say, stage, done)

    ticket = stage("evaluation", f"6/8 greedy evaluation on {', '.join(config.eval_splits)}")
    metrics = _evaluate_all(config, stages, manifests, out / "eval", say)
    done(ticket)
    ticket = stage("attribution", f"7/8 modality attribution on {config.attribution_clips} in-distribution clips "
                                  "per variant")
    attribution = _attribute_all(config, stages, manifests, out / "eval", say)
    done(ticket)
    ticket = stage("balance", "7b/8 modality balance of every variant (answers without video / audio, token "
                              "norms, face probe)")
    balance = _balance_all(config, stages, manifests, attribution, say)
    done(ticket)

    ticket = stage("report", "8/8 results and report")
    eval_samples = {split: read_samples(manifests[split]) for split in config.eval_splits}
    results = _results(config, metrics, stages, out / "eval", attribution, timings, started, eval_samples, balance)
    results["benchmark_digest"] = bench_digest   # equal digests: the same files, byte for byte
    write_report(out, results, metrics, out / "eval", out / "runs", manifests)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    done(ticket)
    say(_table(results))
    say(f"report: {out / 'report.md'}   results: {out / 'results.json'}   "
        f"wall time {results['wall_seconds'] / 60:.1f} min")
    return results


def _train_stages(config: DemoConfig, out: Path, manifests: dict[str, Path], say, stage, done) -> _Stages:
    """Stages 2-5: random init, base, cold start, label SFT, GRPO (and GRPO with grounding)."""
    stages = train_starting_points(config, out, manifests, say, stage, done)
    runs = out / "runs"
    ticket = stage("label_sft", f"4/8 label SFT from the base, {config.label_sft_epochs:g} epoch(s) "
                                "(MAFW-DFEW-SFT's role)")
    _train_once(runs, stages, "label_sft", say, lambda: run_sft(
        config, str(stages.models["base"]), manifests["train"], "label", runs / "label_sft", config.label_sft,
        config.label_sft_epochs, media=stages.media, modality_dropout=config.label_modality_dropout))
    done(ticket)

    steps = grpo_steps(config, len(read_samples(manifests["train"])))
    ticket = stage("rlvr", f"5/8 GRPO from the cold start on the training labels (R1-Omni's role), {steps} steps "
                           f"x {config.grpo_clips_per_step} clips x G={config.grpo_generations}")
    _train_once(runs, stages, "rlvr", say, lambda: run_grpo(
        config, str(stages.models["cold_start_sft"]), manifests["train"], runs / "rlvr", media=stages.media))
    done(ticket)
    if config.grounding_weight:
        ticket = stage("rlvr_grounding", f"5b/8 the same GRPO run with the grounding reward (weight "
                                         f"{config.grounding_weight:g}): true cue claims in the reasoning are paid for")
        rewards = {"accuracy": 1.0, "format": 1.0, "grounding": config.grounding_weight}
        _train_once(runs, stages, "rlvr_grounding", say, lambda: run_grpo(
            config, str(stages.models["cold_start_sft"]), manifests["train"], runs / "rlvr_grounding", rewards,
            media=stages.media))
        done(ticket)
    return stages


def train_starting_points(config: DemoConfig, out: Path, manifests: dict[str, Path], say, stage=None,
                          done=None) -> _Stages:
    """Stages 2-3, what the compared recipes start from: random init, the base and the cold start."""
    stage = stage or (lambda key, title: (say(f"{_SEPARATOR}\n{title}"), None))
    done = done or (lambda ticket: None)
    models, runs = out / "models", out / "runs"
    stages = _Stages()
    ticket = stage("base", "2/8 tiny model: random init, then base pre-training: cue descriptions, then instruction "
                           "data (no face / voice -> emotion mapping)")
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
    if config.perception.steps:
        _train_once(runs, stages, "perception", say, lambda: run_sft(
            config, str(init_dir), manifests["pretrain"], "description", runs / "perception", config.perception,
            prompt="describe", media=stages.media))
        start = stages.models.pop("perception")
    _train_once(runs, stages, "base", say, lambda: run_sft(
        config, str(start), manifests["pretrain"], "instruction", runs / "base", config.pretrain,
        prompt=SAMPLE_QUESTION, media=stages.media))
    if "perception" in stages.budgets:   # the base's budget counts both of its phases
        perception = stages.budgets.pop("perception")
        stages.budgets["base"] = {key: value + perception.get(key, 0) for key, value in stages.budgets["base"].items()}
    done(ticket)

    ticket = stage("cold_start_sft", "3/8 cold-start SFT on the reasoning split (EMER-SFT's role)")
    _train_once(runs, stages, "cold_start_sft", say, lambda: run_sft(
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


def _evaluate_all(config: DemoConfig, stages: _Stages, manifests: dict[str, Path], evals: Path,
                  say) -> dict[str, dict[str, dict]]:
    """Stage 6: every variant on every evaluation split (predictions and metrics under ``evals``)."""
    labels = get_label_set("synth")
    options = EvalOptions(prompt=config.prompt, batch_size=config.eval_batch_size,
                          max_new_tokens=config.max_new_tokens, cache_media=False)
    metrics: dict[str, dict[str, dict]] = {}
    # Not the random init: it never ends an answer (every clip costs max_new_tokens) and scores 0 by construction.
    for name, model_dir in [(n, d) for n, d in stages.models.items() if n != "random_init"]:
        policy = load_policy(model_dir)
        policy.module.eval()
        metrics[name] = {split_key(split): evaluate(policy, read_samples(manifests[split]),
                                                    evals / name / split_key(split), labels, options,
                                                    media=stages.media)
                         for split in config.eval_splits}
        say(f"   {name:15s} " + "  ".join(f"{key.upper()} WAR {m['normalized']['war']:.3f}"
                                          for key, m in metrics[name].items()))
    return metrics


def _attribute_all(config: DemoConfig, stages: _Stages, manifests: dict[str, Path], evals: Path,
                   say) -> dict[str, dict]:
    """Stage 7: counterfactual modality attribution of each trained variant on in-distribution clips."""
    attribution: dict[str, dict] = {}
    if not config.attribution_clips:
        return attribution
    clips = read_samples(manifests[_in_distribution_split(config)])[:config.attribution_clips]
    for name in [n for n in stages.models if n not in ("random_init", "base")]:
        policy = load_policy(stages.models[name])
        policy.module.eval()
        loader = ClipLoader.for_policy(policy, prompt=config.prompt, cache=stages.media)
        results, _ = attribute(policy, clips, loader, get_label_set("synth"), max_new_tokens=config.max_new_tokens,
                               batch_size=config.eval_batch_size)
        attribution[name] = summarize(results)
        atomic_write_text(evals / name / "attribution.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in results))
        say(f"   {name:15s} attribution names the carrying modality in "
            f"{attribution[name].get('attribution_accuracy', float('nan')):.2f} of clips")
    return attribution


def _in_distribution_split(config: DemoConfig) -> str:
    """Where attribution and the balance look: the in-distribution test split, or its validation twin."""
    return "test_id" if "test_id" in config.eval_splits else "val_id"


def _balance_all(config: DemoConfig, stages: _Stages, manifests: dict[str, Path], attribution: dict[str, dict],
                 say) -> dict[str, dict]:
    """Stage 7b: each evaluated variant's modality balance on the in-distribution split (answer changes from
    attribution's clips, token norms and the face probe from all of them)."""
    samples = read_samples(manifests[_in_distribution_split(config)])
    balance: dict[str, dict] = {}
    for name in [n for n in stages.models if n != "random_init"]:
        policy = load_policy(stages.models[name])
        loader = ClipLoader.for_policy(policy, prompt=config.prompt, cache=stages.media)
        balance[name] = measure_balance(policy, samples, loader, get_label_set("synth"),
                                        attribution=attribution.get(name), flip_clips=config.attribution_clips,
                                        seed=config.seed, batch_size=config.eval_batch_size,
                                        max_new_tokens=config.max_new_tokens)
        say(f"   {name:15s} " + _balance_line(balance[name]))
    return balance


def _balance_line(record: dict) -> str:
    def share(value):
        return "–" if value is None else f"{value:.2f}"

    changes, norms, probe = record["answer_change"] or {}, record["token_norms"] or {}, record["face_probe"] or {}
    return (f"answer changes w/o video {share(changes.get('no_video'))}, w/o audio {share(changes.get('no_audio'))}; "
            f"video/text norm {share(norms.get('video_to_text'))}, audio/text {share(norms.get('audio_to_text'))}; "
            f"face probe {share(probe.get('accuracy'))} (chance {share(probe.get('chance'))})")


def _results(config: DemoConfig, metrics: dict, stages: _Stages, evals: Path, attribution: dict,
             timings: dict, started: float, eval_samples: dict[str, list[Sample]],
             balance: dict | None = None) -> dict:
    keys = [split_key(split) for split in config.eval_splits]
    variants = {}
    for name, by_split in metrics.items():
        variants[name] = {key: {"war": m["normalized"]["war"], "uar": m["normalized"]["uar"],
                                "format_rate": m["normalized"]["format_rate"], "n": m["normalized"]["n"],
                                "strict_war": m["strict"]["war"], "strict_uar": m["strict"]["uar"],
                                "by_carrier": _by_carrier(evals / name / key, eval_samples[split]),
                                "reasoning": m.get("reasoning", {})}
                          for key, split, m in zip(keys, config.eval_splits, by_split.values())}
        variants[name]["budget"] = stages.budgets.get(name, {"clip_views": 0})
        variants[name]["clip_views"] = variants[name]["budget"]["clip_views"]
        if name in attribution:
            variants[name]["attribution"] = attribution[name]
        if balance and name in balance:
            key = split_key(_in_distribution_split(config))
            carriers = variants[name].get(key, {}).get("by_carrier", {})
            variants[name]["balance"] = {"split": key, "face_only_accuracy": carriers.get("face"),
                                         "voice_only_accuracy": carriers.get("voice"), **balance[name]}
    pairs = {}
    for a, b in PAIRS:
        if a in metrics and b in metrics:
            pairs[f"{a}_vs_{b}"] = {}
            for key in keys:
                right_a, right_b = correct(evals / a / key), correct(evals / b / key)
                ids = sorted(set(right_a) & set(right_b))
                pairs[f"{a}_vs_{b}"][key] = paired([right_a[i] for i in ids], [right_b[i] for i in ids])
    result = {"variants": variants, "paired": pairs, "eval_splits": list(config.eval_splits)}
    if "rlvr_grounding" in metrics:
        cues = {s.id: s.meta["cues"] for samples in eval_samples.values() for s in samples if s.meta.get("cues")}
        result["paired_hallucination"] = {}
        for key in keys:
            ha, hb = (_hallucinated_share(evals / name / key, cues) for name in ("rlvr_grounding", "rlvr"))
            both = sorted(set(ha) & set(hb))
            result["paired_hallucination"][key] = paired([ha[i] for i in both], [hb[i] for i in both])
    result.update(wall_seconds=time.perf_counter() - started, stage_seconds=timings, config=asdict(config),
                  environment=describe_environment())
    return result


def _table(results: dict) -> str:
    keys = results["eval_splits"]
    keys = [split_key(split) for split in keys]
    lines = [_SEPARATOR, f"{'variant':16s} {'clip-views':>10s} | " + " | ".join(
        f"{key.upper():>5s} WAR  UAR  fmt" for key in keys)]
    for name, row in results["variants"].items():
        lines.append(f"{name:16s} {row['clip_views']:>10d} | " + " | ".join(
            f"{row[key]['war']:9.3f} {row[key]['uar']:.3f} {row[key]['format_rate']:.2f}" for key in keys))
    for name, by_split in results["paired"].items():
        parts = [f"{key.upper()} {v['diff']:+.3f} ± {v['se']:.3f}" for key, v in by_split.items()]
        lines.append(f"paired {name}: " + ", ".join(parts) + "  (mean per-clip correctness difference ± SE)")
    lines.append(_SEPARATOR)
    return "\n".join(lines)
