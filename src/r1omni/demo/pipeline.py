"""The embedded default: the paper's whole pipeline on the generated benchmark, on a CPU, in minutes.

Top to bottom, each stage reusing what a previous run already finished:

1. generate (or reuse) the benchmark (``r1omni.synth``);
2. build the tiny default model (random init: reported for reference) and pre-train its
   perception on cue descriptions, never emotion words ("base": HumanOmni-0.5B's role);
3. cold-start SFT on the reasoning split ("cold_start_sft": EMER-SFT's role);
4. label SFT from the base on the training labels, one epoch ("label_sft": MAFW-DFEW-SFT's role);
5. GRPO from the cold start on the training labels ("rlvr": R1-Omni's role), and the same run with
   the grounding reward added ("rlvr_grounding": R = accuracy + format + w * grounding, the true
   cue claims of the reasoning paid for; same cold start, same budget);
6. evaluate every variant in and out of distribution (WAR, UAR, format rate, reasoning quality),
   with paired differences and standard errors between RLVR and the two SFT rows (and between
   the two RLVR rows, also in hallucinated cue claims);
7. modality attribution of each trained variant on in-distribution clips, where the decisive
   modality is known;
8. a report folder: ``results.json``, ``report.md``, PNG plots, example outputs.

The paper's ordering (RLVR > label SFT > cold start > base) is a hypothesis this run tests, not
something it forces: the numbers are whatever the run measures.
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
from r1omni.clips import ClipLoader
from r1omni.demo.report import write_report
from r1omni.environment import describe_environment
from r1omni.evaluate import EvalOptions, evaluate
from r1omni.explain.attribution import attribute, summarize
from r1omni.labels import get_label_set
from r1omni.metrics import PREDICTIONS
from r1omni.models import SamplingConfig, init_preset, load_policy
from r1omni.schema import Sample, read_samples
from r1omni.synth import generate_benchmark
from r1omni.synth.text import corpus as synth_corpus
from r1omni.train.grpo import GRPOConfig, LossConfig, train_grpo
from r1omni.train.setup import OptimConfig
from r1omni.train.sft import SFTConfig, train_sft

__all__ = ["DemoConfig", "StageBudget", "run_demo", "VARIANTS"]

logger = logging.getLogger(__name__)

VARIANTS = ("base", "cold_start_sft", "label_sft", "rlvr", "rlvr_grounding")
_SEPARATOR = "-" * 78


# Base pre-training trains the whole model: its towers are random (HumanOmni's come pre-trained).
ALL_PARTS = ["llm", "vision_tower", "audio_tower", "vision_projector", "audio_projector"]


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
    pretrain: StageBudget = field(default_factory=lambda: StageBudget(steps=700, lr=6e-4, trainable=ALL_PARTS))
    cold_start: StageBudget = field(default_factory=lambda: StageBudget(steps=200, lr=1e-3, trainable=["llm"]))
    label_sft_epochs: float = 1.0
    label_sft: StageBudget = field(default_factory=lambda: StageBudget(steps=0, lr=1e-3, trainable=["llm"]))
    """Its steps come from ``label_sft_epochs`` (one pass over the training split, as MAFW-DFEW-SFT)."""
    grpo: StageBudget = field(default_factory=lambda: StageBudget(steps=150, lr=1e-4, trainable=["llm"]))
    grpo_generations: int = 8
    grpo_beta: float = 0.04
    grpo_temperature: float = 0.5
    """Rollout temperature. The paper samples at 1.0; measured here, the ~1M-parameter cold start's
    samples at 1.0 were at chance accuracy (so GRPO only learned format and lost 0.2 ID WAR). From
    one cold start, 150 steps: T 0.7 / lr 5e-5 gave greedy ID +0.006 +- 0.028 over the cold start,
    T 0.5 / lr 1e-4 gave +0.091 +- 0.027: near-greedy samples differ where the model is unsure, so
    rewarding the right ones moves its greedy choice."""
    grounding_weight: float = 0.5
    """w of the "RLVR + grounding" row (0 = no such row)."""
    max_new_tokens: int = 100
    eval_batch_size: int = 64
    attribution_clips: int = 70
    """In-distribution clips used for modality attribution per variant (0 = skip)."""

    @classmethod
    def quick(cls, output_dir: str = "demo_out_quick", seed: int = 0) -> "DemoConfig":
        return cls(output_dir=output_dir, synth_preset="quick", seed=seed,
                   pretrain=StageBudget(steps=80, lr=6e-4, trainable=ALL_PARTS),
                   cold_start=StageBudget(steps=40, lr=1e-3, trainable=["llm"]),
                   grpo=StageBudget(steps=8, lr=1e-4, trainable=["llm"]), attribution_clips=14, eval_batch_size=70)


def _sft(config: DemoConfig, stage: str, model: str, data: Path, target: str, out: Path, budget: StageBudget,
         epochs: float = 1.0, prompt: str | None = None):
    sft = SFTConfig(model=model, data=str(data), output_dir=str(out), target=target, prompt=prompt or config.prompt,
                    max_steps=budget.steps or None, epochs=epochs, clips_per_step=config.clips_per_step,
                    trainable=budget.trainable,
                    optim=OptimConfig(lr=budget.lr, schedule="cosine", warmup_ratio=0.05), seed=config.seed,
                    log_every=5, num_threads=config.threads)
    logger.info("%s: SFT (%s) from %s", stage, target, model)
    return train_sft(sft)


def _grpo(config: DemoConfig, model: str, data: Path, out: Path, rewards: dict[str, float] | None = None):
    grpo = GRPOConfig(model=model, data=str(data), output_dir=str(out), prompt=config.prompt,
                      rewards=rewards or {"accuracy": 1.0, "format": 1.0},
                      num_generations=config.grpo_generations, clips_per_step=config.clips_per_step,
                      gradient_accumulation_steps=1, max_steps=config.grpo.steps,
                      sampling=SamplingConfig(max_new_tokens=config.max_new_tokens, do_sample=True,
                                              temperature=config.grpo_temperature, top_k=50, top_p=1.0),
                      beta=config.grpo_beta, loss=LossConfig(), trainable=config.grpo.trainable,
                      optim=OptimConfig(lr=config.grpo.lr, schedule="constant", warmup_ratio=0.0),
                      seed=config.seed, log_every=1, sample_every=25, num_threads=config.threads)
    return train_grpo(grpo)


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


def _paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean per-clip difference (a − b) on the same clips (correctness, or a share) and its standard error."""
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    if not n:
        return {"diff": 0.0, "se": 0.0, "n": 0}
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return {"diff": mean, "se": math.sqrt(var / n), "n": n}


def _correct(eval_dir: Path) -> dict[str, bool]:
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


def run_demo(config: DemoConfig, say: Callable[[str], None]) -> dict:
    """Run (or resume) the whole demo; ``say`` receives progress lines for the user (the CLI prints them)."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench = Path(config.benchmark_dir) if config.benchmark_dir else out / "benchmark"
    models, runs, evals = out / "models", out / "runs", out / "eval"
    timings: dict[str, float] = {}

    def stage(name: str):
        say(f"{_SEPARATOR}\n{name}")
        return time.perf_counter()

    # 1. benchmark ------------------------------------------------------------------------------
    tick = stage(f"1/8 benchmark ({config.synth_preset}) in {bench}")
    manifests = generate_benchmark(bench, preset=config.synth_preset, seed=config.seed)
    sizes = {split: len(read_samples(path)) for split, path in manifests.items()}
    say(f"   splits: {sizes}")
    _forget_stale_results(out, config, bench, say)
    timings["benchmark"] = time.perf_counter() - tick

    # 2. random init and base pre-training ------------------------------------------------------
    tick = stage("2/8 tiny model: random init, then perception pre-training on cue descriptions")
    init_dir = models / "init"
    if not is_complete(init_dir):
        policy = init_preset(config.model_preset, seed=config.seed, corpus=synth_corpus())
        with atomic_dir(init_dir) as tmp:
            policy.save(tmp)
        del policy
    params = sum(p.numel() for p in load_policy(init_dir).module.parameters())
    say(f"   {config.model_preset}: {params / 1e6:.2f}M parameters")
    trained: dict[str, Path] = {}
    clip_views: dict[str, int] = {"random_init": 0}

    def train_once(name: str, stage_function: Callable, *args) -> Path:
        final = runs / name / "final"
        marker = runs / name / "result.json"
        if is_complete(final) and marker.is_file():
            clip_views[name] = json.loads(marker.read_text())["clip_views"]
            say(f"   {name}: reusing {final}")
            return final
        if (runs / name).exists():
            shutil.rmtree(runs / name)
        result = stage_function(*args)
        clip_views[name] = result.clip_views
        atomic_write_text(marker, json.dumps({"clip_views": result.clip_views, "steps": result.steps,
                                              "wall_seconds": result.wall_seconds}))
        say(f"   {name}: {result.steps} steps, {result.clip_views} clip-views, {result.wall_seconds:.0f} s")
        return final

    trained["base"] = train_once("base", _sft, config, "base", str(init_dir), manifests["pretrain"], "description",
                                 runs / "base", config.pretrain, 1.0, "describe")
    timings["base"] = time.perf_counter() - tick

    # 3. cold start -----------------------------------------------------------------------------
    tick = stage("3/8 cold-start SFT on the reasoning split (EMER-SFT's role)")
    trained["cold_start_sft"] = train_once("cold_start_sft", _sft, config, "cold_start", str(trained["base"]),
                                           manifests["cold_start"], "reasoning", runs / "cold_start_sft",
                                           config.cold_start)
    timings["cold_start_sft"] = time.perf_counter() - tick

    # 4. label SFT ------------------------------------------------------------------------------
    tick = stage(f"4/8 label SFT from the base, {config.label_sft_epochs:g} epoch(s) (MAFW-DFEW-SFT's role)")
    trained["label_sft"] = train_once("label_sft", _sft, config, "label_sft", str(trained["base"]),
                                      manifests["train"], "label", runs / "label_sft", config.label_sft,
                                      config.label_sft_epochs)
    timings["label_sft"] = time.perf_counter() - tick

    # 5. GRPO -----------------------------------------------------------------------------------
    tick = stage(f"5/8 GRPO from the cold start on the training labels (R1-Omni's role), "
                 f"{config.grpo.steps} steps x {config.clips_per_step} clips x G={config.grpo_generations}")
    trained["rlvr"] = train_once("rlvr", _grpo, config, str(trained["cold_start_sft"]), manifests["train"],
                                 runs / "rlvr")
    timings["rlvr"] = time.perf_counter() - tick
    if config.grounding_weight:
        tick = stage(f"5b/8 the same GRPO run with the grounding reward (weight {config.grounding_weight:g}): "
                     f"true cue claims in the reasoning are paid for")
        rewards = {"accuracy": 1.0, "format": 1.0, "grounding": config.grounding_weight}
        trained["rlvr_grounding"] = train_once("rlvr_grounding", _grpo, config, str(trained["cold_start_sft"]),
                                               manifests["train"], runs / "rlvr_grounding", rewards)
        timings["rlvr_grounding"] = time.perf_counter() - tick

    # 6. evaluation -----------------------------------------------------------------------------
    tick = stage("6/8 evaluation in (test_id) and out of distribution (test_ood), greedy")
    labels = get_label_set("synth")
    options = EvalOptions(prompt=config.prompt, batch_size=config.eval_batch_size,
                          max_new_tokens=config.max_new_tokens, cache_media=False)
    rows = {"random_init": init_dir, **trained}
    metrics: dict[str, dict[str, dict]] = {}
    for name, model_dir in rows.items():
        policy = load_policy(model_dir)
        policy.module.eval()
        metrics[name] = {}
        for split, key in (("test_id", "id"), ("test_ood", "ood")):
            metrics[name][key] = evaluate(policy, read_samples(manifests[split]), evals / name / key, labels, options)
        say(f"   {name:15s} ID WAR {metrics[name]['id']['normalized']['war']:.3f}  "
            f"OOD WAR {metrics[name]['ood']['normalized']['war']:.3f}  "
            f"format {metrics[name]['id']['normalized']['format_rate']:.2f}")
    timings["evaluation"] = time.perf_counter() - tick

    # 7. attribution ----------------------------------------------------------------------------
    tick = stage(f"7/8 modality attribution on {config.attribution_clips} in-distribution clips per variant")
    attribution: dict[str, dict] = {}
    if config.attribution_clips:
        test_id = read_samples(manifests["test_id"])[:config.attribution_clips]
        for name in [n for n in trained if n != "base"]:
            policy = load_policy(trained[name])
            policy.module.eval()
            loader = ClipLoader(num_frames=policy.num_frames, prompt=config.prompt)
            results, _ = attribute(policy, test_id, loader, labels, max_new_tokens=config.max_new_tokens,
                                   batch_size=config.eval_batch_size)
            attribution[name] = summarize(results)
            atomic_write_text(evals / name / "attribution.jsonl",
                              "".join(json.dumps(r.to_dict()) + "\n" for r in results))
            say(f"   {name:15s} attribution names the carrying modality in "
                f"{attribution[name].get('attribution_accuracy', float('nan')):.2f} of clips")
    timings["attribution"] = time.perf_counter() - tick

    # 8. results and report ---------------------------------------------------------------------
    tick = stage("8/8 results and report")
    results = _results(config, metrics, clip_views, evals, attribution, timings, started,
                       read_samples(manifests["test_id"]) + read_samples(manifests["test_ood"]))
    write_report(out, results, metrics, evals, runs, manifests)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    timings["report"] = time.perf_counter() - tick
    say(_table(results))
    say(f"report: {out / 'report.md'}   results: {out / 'results.json'}   "
        f"wall time {results['wall_seconds'] / 60:.1f} min")
    return results


def _results(config: DemoConfig, metrics: dict, clip_views: dict, evals: Path, attribution: dict,
             timings: dict, started: float, test_samples: list[Sample]) -> dict:
    variants = {}
    for name, by_split in metrics.items():
        variants[name] = {key: {"war": m["normalized"]["war"], "uar": m["normalized"]["uar"],
                                "format_rate": m["normalized"]["format_rate"], "n": m["normalized"]["n"],
                                "strict_war": m["strict"]["war"], "strict_uar": m["strict"]["uar"],
                                "reasoning": m.get("reasoning", {})}
                          for key, m in by_split.items()}
        variants[name]["clip_views"] = clip_views.get(name, 0)
        if name in attribution:
            variants[name]["attribution"] = attribution[name]
    paired = {}
    for other in ("cold_start", "label_sft"):
        other_name = "cold_start_sft" if other == "cold_start" else other
        paired[f"rlvr_vs_{other}"] = {}
        for key in ("id", "ood"):
            a, b = _correct(evals / "rlvr" / key), _correct(evals / other_name / key)
            ids = sorted(set(a) & set(b))
            paired[f"rlvr_vs_{other}"][key] = _paired([a[i] for i in ids], [b[i] for i in ids])
    if "rlvr_grounding" in metrics:
        paired["rlvr_grounding_vs_rlvr"], paired_hallucination = {}, {}
        cues = {s.id: s.meta["cues"] for s in test_samples if s.meta.get("cues")}
        for key in ("id", "ood"):
            a, b = _correct(evals / "rlvr_grounding" / key), _correct(evals / "rlvr" / key)
            ids = sorted(set(a) & set(b))
            paired["rlvr_grounding_vs_rlvr"][key] = _paired([a[i] for i in ids], [b[i] for i in ids])
            ha, hb = (_hallucinated_share(evals / name / key, cues) for name in ("rlvr_grounding", "rlvr"))
            both = sorted(set(ha) & set(hb))
            paired_hallucination[key] = _paired([ha[i] for i in both], [hb[i] for i in both])
    return {
        "variants": variants,
        "paired": paired,
        **({"paired_hallucination": paired_hallucination} if "rlvr_grounding" in metrics else {}),
        "wall_seconds": time.perf_counter() - started,
        "stage_seconds": timings,
        "config": asdict(config),
        "environment": describe_environment(),
    }


def _table(results: dict) -> str:
    lines = [_SEPARATOR, f"{'variant':16s} {'clip-views':>10s} | {'ID WAR':>7s} {'ID UAR':>7s} {'format':>6s} | "
                         f"{'OOD WAR':>7s} {'OOD UAR':>7s}"]
    for name, row in results["variants"].items():
        lines.append(f"{name:16s} {row['clip_views']:>10d} | {row['id']['war']:7.3f} {row['id']['uar']:7.3f} "
                     f"{row['id']['format_rate']:6.2f} | {row['ood']['war']:7.3f} {row['ood']['uar']:7.3f}")
    for name, by_split in results["paired"].items():
        parts = [f"{key.upper()} {v['diff']:+.3f} ± {v['se']:.3f}" for key, v in by_split.items()]
        lines.append(f"paired {name}: " + ", ".join(parts) + "  (mean per-clip correctness difference ± SE)")
    lines.append(_SEPARATOR)
    return "\n".join(lines)
