"""The embedded default: the paper's whole pipeline on the generated benchmark, on a CPU, in minutes.

Top to bottom, each stage reusing what a previous run already finished under the same settings
(``r1omni.demo.reuse``):

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
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from r1omni.atomic import atomic_write_text
from r1omni.clips import ClipLoader
from r1omni.demo.config import PAIRS, SEPARATOR, DemoConfig, split_key
from r1omni.demo.progress import StageBar
from r1omni.demo.report import write_report
from r1omni.demo.reuse import forget_stale_results
from r1omni.demo.stages import Stages, grpo_steps, run_grpo, run_sft, train_once, train_starting_points
from r1omni.demo.stats import by_carrier, correct, hallucinated_share, paired
from r1omni.environment import describe_environment
from r1omni.evaluate import EvalOptions, evaluate
from r1omni.explain.attribution import attribute, summarize
from r1omni.explain.balance import measure_balance
from r1omni.labels import get_label_set
from r1omni.models import load_policy
from r1omni.models.card import EvalScore, record_scores
from r1omni.provenance import write_run_record
from r1omni.schema import Sample, read_samples
from r1omni.synth import generate_benchmark
from r1omni.synth.generate import benchmark_digest

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)


def run_demo(config: DemoConfig, say: Callable[[str], None], progress: bool = True) -> dict:
    """Run (or resume) the whole demo; ``say`` receives progress lines for the user (the CLI prints them);
    ``progress``: bars over the evaluation and attribution stages (on a terminal only)."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    write_run_record(out, config)
    bench = Path(config.benchmark_dir) if config.benchmark_dir else out / "benchmark"
    timings: dict[str, float] = {}

    def stage(key: str, title: str):
        say(f"{SEPARATOR}\n{title}")
        return key, time.perf_counter()

    def done(ticket) -> None:
        timings[ticket[0]] = time.perf_counter() - ticket[1]

    ticket = stage("benchmark", f"1/8 benchmark ({config.synth_preset}) in {bench}")
    manifests = generate_benchmark(bench, preset=config.synth_preset, seed=config.seed)
    bench_digest = benchmark_digest(bench)
    say(f"   splits: { {split: len(read_samples(path)) for split, path in manifests.items()} }, "
        f"digest {bench_digest['all']}")
    forget_stale_results(out, config, bench, say)
    done(ticket)
    stages = _train_stages(config, out, manifests, say, stage, done)

    ticket = stage("evaluation", f"6/8 greedy evaluation on {', '.join(config.eval_splits)}")
    metrics = _evaluate_all(config, stages, manifests, out / "eval", say, progress)
    done(ticket)
    reference = _attribution_reference(config, manifests)
    ticket = stage("attribution", f"7/8 modality attribution on {config.attribution_clips} in-distribution clips "
                                  f"per variant, a stream removed by {config.attribution_method}"
                                  + (f" ({reference.id})" if reference else ""))
    attribution = _attribute_all(config, stages, manifests, out / "eval", say, progress, reference)
    done(ticket)
    ticket = stage("balance", "7b/8 modality balance of every variant (answers without video / audio, token "
                              "norms, face probe)")
    balance = _balance_all(config, stages, manifests, attribution, say, reference)
    done(ticket)

    ticket = stage("report", "8/8 results and report")
    eval_samples = {split: read_samples(manifests[split]) for split in config.eval_splits}
    results = _results(config, metrics, stages, out / "eval", attribution, timings, started, eval_samples, balance)
    results["benchmark_digest"] = bench_digest   # equal digests: the same files, byte for byte
    results["attribution_removal"] = {"method": config.attribution_method,
                                      "reference": reference.id if reference else None}
    write_report(out, results, metrics, out / "eval", out / "runs", manifests)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    done(ticket)
    say(_table(results))
    say(f"report: {out / 'report.md'}   results: {out / 'results.json'}   "
        f"wall time {results['wall_seconds'] / 60:.1f} min")
    return results


def _train_stages(config: DemoConfig, out: Path, manifests: dict[str, Path], say, stage, done) -> Stages:
    """Stages 2-5: random init, base, cold start, label SFT, GRPO (and GRPO with grounding)."""
    stages = train_starting_points(config, out, manifests, say, stage, done)
    runs = out / "runs"
    ticket = stage("label_sft", f"4/8 label SFT from the base, {config.label_sft_epochs:g} epoch(s) "
                                "(MAFW-DFEW-SFT's role)")
    train_once(runs, stages, "label_sft", say, lambda: run_sft(
        config, str(stages.models["base"]), manifests["train"], "label", runs / "label_sft", config.label_sft,
        config.label_sft_epochs, media=stages.media, modality_dropout=config.label_modality_dropout))
    done(ticket)

    steps = grpo_steps(config, len(read_samples(manifests["train"])))
    ticket = stage("rlvr", f"5/8 GRPO from the cold start on the training labels (R1-Omni's role), {steps} steps "
                           f"x {config.grpo_clips_per_step} clips x G={config.grpo_generations}")
    train_once(runs, stages, "rlvr", say, lambda: run_grpo(
        config, str(stages.models["cold_start_sft"]), manifests["train"], runs / "rlvr", media=stages.media))
    done(ticket)
    if config.grounding_weight:
        ticket = stage("rlvr_grounding", f"5b/8 the same GRPO run with the grounding reward (weight "
                                         f"{config.grounding_weight:g}): true cue claims in the reasoning are paid for")
        rewards = {"accuracy": 1.0, "format": 1.0, "grounding": config.grounding_weight}
        train_once(runs, stages, "rlvr_grounding", say, lambda: run_grpo(
            config, str(stages.models["cold_start_sft"]), manifests["train"], runs / "rlvr_grounding", rewards,
            media=stages.media))
        done(ticket)
    return stages


def _evaluate_all(config: DemoConfig, stages: Stages, manifests: dict[str, Path], evals: Path,
                  say, progress: bool) -> dict[str, dict[str, dict]]:
    """Stage 6: every variant on every evaluation split (predictions and metrics under ``evals``; WAR / UAR
    also in each variant's model card)."""
    labels = get_label_set("synth")
    options = EvalOptions(prompt=config.prompt, batch_size=config.eval_batch_size,
                          max_new_tokens=config.max_new_tokens, cache_media=False)
    metrics: dict[str, dict[str, dict]] = {}
    samples = {split: read_samples(manifests[split]) for split in config.eval_splits}
    # Not the random init: it never ends an answer (every clip costs max_new_tokens) and scores 0 by construction.
    variants = [(n, d) for n, d in stages.models.items() if n != "random_init"]
    with StageBar(len(variants) * sum(map(len, samples.values())), "evaluation", progress) as bar:
        for name, model_dir in variants:
            policy = load_policy(model_dir)
            policy.module.eval()
            metrics[name] = {split_key(split): evaluate(policy, samples[split], evals / name / split_key(split),
                                                        labels, options, media=stages.media, progress=bar.part())
                             for split in config.eval_splits}
            say(f"   {name:15s} " + "  ".join(f"{key.upper()} WAR {m['normalized']['war']:.3f}"
                                              for key, m in metrics[name].items()))
            record_scores(model_dir, [EvalScore("synth", war=m["normalized"]["war"], uar=m["normalized"]["uar"],
                                                split=split)
                                      for split, m in zip(config.eval_splits, metrics[name].values())])
    return metrics


def _attribution_reference(config: DemoConfig, manifests: dict[str, Path]) -> Sample | None:
    """The clip whose streams stand in for removed ones when ``attribution_method`` is "reference": the first
    training clip labelled neutral (on the benchmark, face and voice at rest); None for the other methods."""
    if config.attribution_method != "reference":
        return None
    neutral = next((s for s in read_samples(manifests["train"]) if s.label == "neutral"), None)
    if neutral is None:
        raise ValueError(f"{manifests['train']}: no clip labelled neutral to serve as attribution's reference")
    return neutral


def _attribute_all(config: DemoConfig, stages: Stages, manifests: dict[str, Path], evals: Path,
                   say, progress: bool, reference: Sample | None = None) -> dict[str, dict]:
    """Stage 7: counterfactual modality attribution of each trained variant on in-distribution clips, a stream
    removed by ``config.attribution_method`` (``reference``: :func:`_attribution_reference`)."""
    attribution: dict[str, dict] = {}
    if not config.attribution_clips:
        return attribution
    clips = read_samples(manifests[_in_distribution_split(config)])[:config.attribution_clips]
    names = [n for n in stages.models if n not in ("random_init", "base")]
    with StageBar(len(names) * len(clips), "attribution", progress) as bar:
        for name in names:
            policy = load_policy(stages.models[name])
            policy.module.eval()
            loader = ClipLoader.for_policy(policy, prompt=config.prompt, cache=stages.media)
            stand_in = loader.load_reference(reference)
            results, _ = attribute(policy, clips, loader, get_label_set("synth"), method=config.attribution_method,
                                   max_new_tokens=config.max_new_tokens, batch_size=config.eval_batch_size,
                                   progress=bar.part(), reference=stand_in)
            attribution[name] = summarize(results)
            atomic_write_text(evals / name / "attribution.jsonl",
                              "".join(json.dumps(r.to_dict()) + "\n" for r in results))
            say(f"   {name:15s} attribution names the carrying modality in "
                f"{attribution[name].get('attribution_accuracy', float('nan')):.2f} of clips")
    return attribution


def _in_distribution_split(config: DemoConfig) -> str:
    """Where attribution and the balance look: the in-distribution test split, or its validation twin."""
    return "test_id" if "test_id" in config.eval_splits else "val_id"


def _balance_all(config: DemoConfig, stages: Stages, manifests: dict[str, Path], attribution: dict[str, dict],
                 say, reference: Sample | None = None) -> dict[str, dict]:
    """Stage 7b: each evaluated variant's modality balance on the in-distribution split (answer changes from
    attribution's clips, a stream removed as there; token norms and the face probe from all of them)."""
    samples = read_samples(manifests[_in_distribution_split(config)])
    balance: dict[str, dict] = {}
    for name in [n for n in stages.models if n != "random_init"]:
        policy = load_policy(stages.models[name])
        loader = ClipLoader.for_policy(policy, prompt=config.prompt, cache=stages.media)
        balance[name] = measure_balance(policy, samples, loader, get_label_set("synth"),
                                        attribution=attribution.get(name), flip_clips=config.attribution_clips,
                                        seed=config.seed, batch_size=config.eval_batch_size,
                                        max_new_tokens=config.max_new_tokens, method=config.attribution_method,
                                        reference=loader.load_reference(reference))
        say(f"   {name:15s} " + _balance_line(balance[name]))
    return balance


def _balance_line(record: dict) -> str:
    def share(value):
        return "–" if value is None else f"{value:.2f}"

    changes, norms, probe = record["answer_change"] or {}, record["token_norms"] or {}, record["face_probe"] or {}
    return (f"answer changes w/o video {share(changes.get('no_video'))}, w/o audio {share(changes.get('no_audio'))}; "
            f"video/text norm {share(norms.get('video_to_text'))}, audio/text {share(norms.get('audio_to_text'))}; "
            f"face probe {share(probe.get('accuracy'))} (chance {share(probe.get('chance'))})")


def _results(config: DemoConfig, metrics: dict, stages: Stages, evals: Path, attribution: dict,
             timings: dict, started: float, eval_samples: dict[str, list[Sample]],
             balance: dict | None = None) -> dict:
    keys = [split_key(split) for split in config.eval_splits]
    variants = {}
    for name, by_split in metrics.items():
        variants[name] = {key: {"war": m["normalized"]["war"], "uar": m["normalized"]["uar"],
                                "format_rate": m["normalized"]["format_rate"], "n": m["normalized"]["n"],
                                "strict_war": m["strict"]["war"], "strict_uar": m["strict"]["uar"],
                                "by_carrier": by_carrier(evals / name / key, eval_samples[split]),
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
            ha, hb = (hallucinated_share(evals / name / key, cues) for name in ("rlvr_grounding", "rlvr"))
            both = sorted(set(ha) & set(hb))
            result["paired_hallucination"][key] = paired([ha[i] for i in both], [hb[i] for i in both])
    result.update(wall_seconds=time.perf_counter() - started, stage_seconds=timings, config=asdict(config),
                  environment=describe_environment())
    return result


def _table(results: dict) -> str:
    keys = results["eval_splits"]
    keys = [split_key(split) for split in keys]
    lines = [SEPARATOR, f"{'variant':16s} {'clip-views':>10s} | " + " | ".join(
        f"{key.upper():>5s} WAR  UAR  fmt" for key in keys)]
    for name, row in results["variants"].items():
        lines.append(f"{name:16s} {row['clip_views']:>10d} | " + " | ".join(
            f"{row[key]['war']:9.3f} {row[key]['uar']:.3f} {row[key]['format_rate']:.2f}" for key in keys))
    for name, by_split in results["paired"].items():
        parts = [f"{key.upper()} {v['diff']:+.3f} ± {v['se']:.3f}" for key, v in by_split.items()]
        lines.append(f"paired {name}: " + ", ".join(parts) + "  (mean per-clip correctness difference ± SE)")
    lines.append(SEPARATOR)
    return "\n".join(lines)
