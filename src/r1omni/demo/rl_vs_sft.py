"""The pre-registered RLVR-vs-SFT study (``docs/study-rlvr-vs-sft.md``, issue #32): ``r1omni demo --study
rl-vs-sft``.

Per seed, on the benchmark variant built for it (synth preset ``rl-vs-sft``: ambiguous and noisy training
labels, a background hue tied to the label in distribution only), from the demo's base and cold start,
four arms at one budget (one pass over ``train``): RLVR, label SFT, DC-SFT (label SFT on the clips of
medium difficulty for the cold start) and SFT → RLVR, each saving its model at every eighth of its budget.
Then, in the order the pre-registration fixes: every model on the validation splits, the precondition
(the cold start's pass@k − pass@1 on ``val_ood``) and the matched-accuracy snapshots, all on validation;
only then the chosen models on the test splits, with pass@k, the KL from the arm's start and from the base
(on ``val_id`` prompts), accuracy by carrier and hallucinated claims. The verdict is
:mod:`r1omni.demo.rule`'s. A re-run reuses every finished run, evaluation and test measurement (it samples
only the precondition's pass@k again); the report (:mod:`r1omni.demo.rl_vs_sft_report`) can be written
again from ``results.json`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from r1omni.atomic import atomic_write_text
from r1omni.demo.config import DemoConfig, StageBudget, tower_budget
from r1omni.demo.rl_vs_sft_report import ARMS, SHIFTED, write_report
from r1omni.demo.rule import PRECONDITION_HEADROOM, compare_over_seeds, verdict
from r1omni.demo.stages import Stages, run_grpo, run_sft, train_once, train_starting_points
from r1omni.demo.stats import by_carrier, correct, hallucinated_share, paired, war
from r1omni.evaluate import EvalOptions, evaluate
from r1omni.labels import get_label_set
from r1omni.models import load_policy
from r1omni.provenance import write_run_record
from r1omni.sampled import kl_to_start, pass_at_k
from r1omni.schema import read_samples, write_samples
from r1omni.synth import generate_benchmark
from r1omni.synth.config import TEST_SPLITS, VALIDATION_SPLITS
from r1omni.train.checkpoint import SNAPSHOT_DIR

__all__ = ["RlVsSftConfig", "run_rl_vs_sft_study", "ARMS", "HYPOTHESES"]

# (name, X, Y, which models): the pre-registration's table.
HYPOTHESES = (("H1", "rlvr", "label_sft", "final"), ("H2", "rlvr", "dc_sft", "final"),
              ("H3", "rlvr", "label_sft", "matched"), ("H4", "sft_rlvr", "label_sft", "final"))
REASONING_ARMS = ("rlvr", "sft_rlvr", "cold_start")   # and the cold start, reported beside the arms


@dataclass
class RlVsSftConfig:
    """The seeds, the demo recipe the arms use (no setting tuned for the study), k of pass@k, and the
    number of models each arm saves along its budget."""

    output_dir: str = "demo_rl_vs_sft"
    seeds: tuple[int, ...] = (0, 1, 2)
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(
        synth_preset="rl-vs-sft", attribution_clips=0, grounding_weight=0, towers=tower_budget(0),
        cold_start=StageBudget(steps=200, lr=1e-3, trainable=["llm"])))
    """The demo's recipe as pre-registered (docs/study-rlvr-vs-sft.md): the tower phase and the 400-step cold
    start came after, so no towers and 200 cold-start steps."""
    k: int = 4
    """Answers sampled per clip for pass@k (GRPO's G) and for the difficulty of DC-SFT."""
    snapshots: int = 8

    def __post_init__(self) -> None:
        if not self.seeds or self.k < 2 or self.snapshots < 1:
            raise ValueError("RlVsSftConfig needs seeds, k >= 2 and at least one snapshot")

    @classmethod
    def quick(cls, output_dir: str = "demo_rl_vs_sft_quick", seeds: tuple[int, ...] = (0,)) -> "RlVsSftConfig":
        # Short answers and two samples a clip: the quick models never end an answer, so every sample costs
        # max_new_tokens; minutes for the whole pipeline, numbers that mean nothing.
        demo = replace(DemoConfig.quick(), synth_preset="rl-vs-sft-quick", attribution_clips=0, grounding_weight=0,
                       max_new_tokens=16, towers=tower_budget(0))
        return cls(output_dir=output_dir, seeds=seeds, demo=demo, k=2, snapshots=2)


# -- training ------------------------------------------------------------------------------------------------
def _eighths(total: int, parts: int) -> list[int]:
    """The steps at which a run of ``total`` steps saves its ``parts`` models (the last: its final)."""
    return sorted({max(1, round(total * i / parts)) for i in range(1, parts + 1)})


def _models(run: Path, steps: list[int]) -> list[Path]:
    """A run's models in training order: its snapshots, then its final model."""
    return [run / SNAPSHOT_DIR / f"step-{s:07d}" for s in steps[:-1]] + [run / "final"]


def _train_arms(config: RlVsSftConfig, demo: DemoConfig, stages: Stages, manifests: dict, runs: Path, say,
                ) -> dict[str, list[Path]]:
    """Train the four arms (each reused when finished); returns each arm's models in training order."""
    base, cold, train = str(stages.models["base"]), str(stages.models["cold_start_sft"]), manifests["train"]
    budget = len(read_samples(train))
    sft_steps, grpo_steps = budget // demo.clips_per_step, budget // demo.grpo_clips_per_step
    sft = StageBudget(steps=sft_steps, lr=demo.label_sft.lr, trainable=demo.label_sft.trainable)
    half = replace(sft, steps=sft_steps // 2)
    n = config.snapshots
    plan = {
        "rlvr": [("rlvr", lambda out, s: run_grpo(demo, cold, train, out, steps=grpo_steps, snapshot_steps=s,
                                                  media=stages.media), _eighths(grpo_steps, n))],
        "label_sft": [("label_sft", lambda out, s: run_sft(demo, base, train, "label", out, sft, snapshot_steps=s,
                                                           media=stages.media), _eighths(sft_steps, n))],
        "dc_sft": [("dc_sft", lambda out, s: run_sft(demo, base, _medium_clips(config, demo, cold, train, runs, say),
                                                     "label", out, sft, snapshot_steps=s, media=stages.media),
                    _eighths(sft_steps, n))],
        "sft_rlvr": [("sft_half", lambda out, s: run_sft(demo, cold, train, "label", out, half, snapshot_steps=s,
                                                         media=stages.media), _eighths(half.steps, max(1, n // 2))),
                     ("sft_rlvr", lambda out, s: run_grpo(demo, str(runs / "sft_half" / "final"), train, out,
                                                          steps=grpo_steps // 2, snapshot_steps=s,
                                                          media=stages.media),
                      _eighths(grpo_steps // 2, max(1, n - n // 2)))],
    }
    models: dict[str, list[Path]] = {}
    for arm, parts in plan.items():
        models[arm] = []
        for name, train_run, steps in parts:
            train_once(runs, stages, name, say, lambda: train_run(runs / name, steps[:-1]))
            models[arm] += _models(runs / name, steps)
    return models


def _medium_clips(config: RlVsSftConfig, demo: DemoConfig, cold: str, train: Path, runs: Path, say) -> Path:
    """DC-SFT's training list: the ``train`` clips on which the cold start's k sampled answers (at GRPO's
    temperature) are neither all right nor all wrong, the clips where GRPO's group advantage is not zero."""
    samples = read_samples(train)
    found = pass_at_k(load_policy(cold), samples, get_label_set("synth"), k=config.k,
                      temperature=demo.grpo_temperature, max_new_tokens=demo.max_new_tokens,
                      batch_size=demo.eval_batch_size, prompt=demo.prompt, seed=demo.seed)
    keep = set(found.medium_difficulty())
    record = {**found.to_dict(), "medium": len(keep), "fallback_to_all": not keep}
    if not keep:   # a cold start that never answers (the quick settings): the arm becomes label SFT, said so
        say(f"   DC-SFT: no training clip is of medium difficulty for the cold start ({found.k} answers each); "
            "trained on every clip instead (recorded in dc_sft_difficulty.json)")
        keep = {s.id for s in samples}
    path = runs / "dc_sft_clips.jsonl"
    write_samples(path, [s for s in samples if s.id in keep])
    atomic_write_text(runs / "dc_sft_difficulty.json", json.dumps(record, indent=1))
    say(f"   DC-SFT: {record['medium']} of {len(samples)} training clips of medium difficulty "
        f"({found.skipped} skipped)")
    return path


# -- evaluation ----------------------------------------------------------------------------------------------
def _evaluate(policy, model: Path, split: str, samples: dict, evals: Path, demo: DemoConfig, stages: Stages
              ) -> Path:
    """``policy`` (loaded from ``model``) on one split (reused when done); returns the evaluation folder."""
    target = _model_evals(model, evals) / split
    policy.module.eval()
    options = EvalOptions(prompt=demo.prompt, batch_size=demo.eval_batch_size, max_new_tokens=demo.max_new_tokens)
    evaluate(policy, samples[split], target, get_label_set("synth"), options, media=stages.media)
    return target


def _model_evals(model: Path, evals: Path) -> Path:
    """The folder of one model's evaluations (``runs/rlvr/final`` → ``evals/rlvr__final``)."""
    return evals / model.relative_to(evals.parent / "runs").as_posix().replace("/", "__")


def _validation(models: dict[str, list[Path]], samples: dict, evals: Path, demo: DemoConfig, stages: Stages
                ) -> dict:
    """Every model's validation WAR, and per arm the matched-accuracy model: the earliest whose ``val_id``
    WAR reaches the lowest of the arms' final ``val_id`` WAR."""
    wars = {arm: [_validation_wars(m, samples, evals, demo, stages) for m in chain] for arm, chain in models.items()}
    target = min(chain[-1]["val_id"] for chain in wars.values())
    matched = {arm: next(i for i, w in enumerate(wars[arm]) if w["val_id"] >= target) for arm in models}
    return {"war": wars, "target": target, "matched": matched}


def _validation_wars(model: Path, samples: dict, evals: Path, demo: DemoConfig, stages: Stages) -> dict:
    policy = load_policy(model)   # once for both splits
    return {split: war(_evaluate(policy, model, split, samples, evals, demo, stages))["war"]
            for split in VALIDATION_SPLITS}


def _test(arm: str, model: Path, start: Path, base: Path, samples: dict, evals: Path, demo: DemoConfig,
          config: RlVsSftConfig, stages: Stages) -> dict:
    """The pre-registered test metrics of one chosen model; kept in ``test_measures.json`` beside its
    evaluations, so that a re-run reuses them instead of sampling again."""
    kept = _model_evals(model, evals) / "test_measures.json"
    identity = {"arm": arm, "start": str(start), "base": str(base), "k": config.k,   # and what sampling reads:
                "temperature": demo.grpo_temperature, "max_new_tokens": demo.max_new_tokens, "prompt": demo.prompt,
                "batch_size": demo.eval_batch_size, "seed": demo.seed}
    if kept.is_file() and (previous := json.loads(kept.read_text(encoding="utf-8")))["identity"] == identity:
        return previous["row"]
    row = _measure_test(arm, model, start, base, samples, evals, demo, config, stages)
    atomic_write_text(kept, json.dumps({"identity": identity, "row": row}, indent=1))
    return row


def _measure_test(arm: str, model: Path, start: Path, base: Path, samples: dict, evals: Path, demo: DemoConfig,
                  config: RlVsSftConfig, stages: Stages) -> dict:
    labels, policy = get_label_set("synth"), load_policy(model)
    row: dict = {"model": str(model), "splits": {}}
    for split in TEST_SPLITS:
        folder = _evaluate(policy, model, split, samples, evals, demo, stages)
        sampled = pass_at_k(policy, samples[split], labels, k=config.k, temperature=demo.grpo_temperature,
                            max_new_tokens=demo.max_new_tokens, batch_size=demo.eval_batch_size,
                            prompt=demo.prompt, seed=demo.seed)
        cues = {s.id: s.meta.get("cues") for s in samples[split]}
        claims = hallucinated_share(folder, cues) if arm in REASONING_ARMS else {}
        row["splits"][split] = {"folder": str(folder), "war": war(folder)["war"], "pass_at_1": sampled.pass_at_1,
                                "pass_at_k": sampled.pass_at_k, "by_carrier": by_carrier(folder, samples[split]),
                                "hallucinated": sum(claims.values()) / len(claims) if claims else None}
    for name, reference in (("kl_to_start", start), ("kl_to_base", base)):
        if reference == model:                            # the base itself: nothing moved
            row[name] = {"per_completion": 0.0, "per_token": 0.0, "the_model_itself": True}
            continue
        if name == "kl_to_base" and reference == start:   # the SFT arms start from the base: the same number
            row[name] = row["kl_to_start"]
            continue
        row[name] = kl_to_start(policy, load_policy(reference), samples["val_id"],
                                completions_per_clip=config.k, max_new_tokens=demo.max_new_tokens,
                                batch_size=demo.eval_batch_size, prompt=demo.prompt, seed=demo.seed).to_dict()
        row[name].pop("per_clip")
    return row


def _study_seed(config: RlVsSftConfig, seed: int, say: Callable[[str], None]) -> dict:
    """Train, validate, choose, then test one seed; returns its record."""
    out = Path(config.output_dir) / f"seed-{seed}"
    demo = replace(config.demo, seed=seed, output_dir=str(out))
    manifests = generate_benchmark(out / "benchmark", preset=demo.synth_preset, seed=seed, progress=False)
    stages = train_starting_points(demo, out, manifests, say)
    runs, evals = out / "runs", out / "evals"
    models = _train_arms(config, demo, stages, manifests, runs, say)
    samples = {split: read_samples(manifests[split]) for split in VALIDATION_SPLITS + TEST_SPLITS}
    cold, base = stages.models["cold_start_sft"], stages.models["base"]
    headroom = pass_at_k(load_policy(cold), samples["val_ood"], get_label_set("synth"), k=config.k,
                         temperature=demo.grpo_temperature, max_new_tokens=demo.max_new_tokens,
                         batch_size=demo.eval_batch_size, prompt=demo.prompt, seed=seed)
    validation = _validation(models, samples, evals, demo, stages)
    say(f"   seed {seed}: validation done; matched val_id WAR {validation['target']:.3f}; cold start pass@"
        f"{config.k} − pass@1 on val_ood {headroom.pass_at_k - headroom.pass_at_1:+.3f}")
    # Only now the test splits, once, for the chosen models.
    starts = {"rlvr": cold, "label_sft": base, "dc_sft": base, "sft_rlvr": cold}
    tests: dict = {}
    for arm in ARMS:
        chosen = {"final": len(models[arm]) - 1, "matched": validation["matched"][arm]}
        measured = {index: _test(arm, models[arm][index], starts[arm], base, samples, evals, demo, config, stages)
                    for index in sorted(set(chosen.values()))}
        tests[arm] = {which: measured[index] for which, index in chosen.items()}
    # Reported beside the arms, never compared by the rule (the pre-registration): the starting points.
    starting = {"base": _test("base", base, base, base, samples, evals, demo, config, stages),
                "cold_start": _test("cold_start", cold, base, base, samples, evals, demo, config, stages)}
    difficulty = json.loads((runs / "dc_sft_difficulty.json").read_text())
    return {"seed": seed, "headroom": {"pass_at_1": headroom.pass_at_1, "pass_at_k": headroom.pass_at_k},
            "dc_sft": {key: difficulty[key] for key in ("medium", "clips", "fallback_to_all", "skipped")},
            "validation": validation, "test": tests, "starting_points": starting,
            "models": {arm: [str(m) for m in chain] for arm, chain in models.items()}}


# -- the rule, the record ------------------------------------------------------------------------------------
def _paired_on(splits: tuple[str, ...], x: dict, y: dict) -> dict:
    """Paired difference X − Y over the clips of ``splits`` together (per-clip correctness)."""
    a, b = {}, {}
    for split in splits:
        right_x, right_y = correct(Path(x["splits"][split]["folder"])), correct(Path(y["splits"][split]["folder"]))
        a.update({(split, k): v for k, v in right_x.items()})
        b.update({(split, k): v for k, v in right_y.items()})
    ids = sorted(set(a) & set(b))
    return paired([a[i] for i in ids], [b[i] for i in ids])


def _decide(by_seed: list[dict], headroom_ok: bool) -> dict:
    """Every hypothesis on the primary outcome (the shifted splits together) and, as secondary results, on
    each test split alone; the verdict from H1 and H2."""
    outcomes: dict = {}
    for name, x, y, which in HYPOTHESES:
        for label, splits in (("shifted", SHIFTED), *((s, (s,)) for s in TEST_SPLITS)):
            per_seed = [_paired_on(splits, r["test"][x][which], r["test"][y][which]) for r in by_seed]
            comparison = compare_over_seeds(per_seed)
            outcomes.setdefault(name, {})[label] = {**asdict(comparison), "interval": comparison.interval,
                                                    "x": x, "y": y, "models": which}
    h1, h2 = (compare_over_seeds([_paired_on(SHIFTED, r["test"][x]["final"], r["test"][y]["final"])
                                  for r in by_seed]) for _, x, y, _ in HYPOTHESES[:2])
    return {"hypotheses": outcomes, "precondition_met": headroom_ok, "verdict": verdict(h1, h2, headroom_ok)}


def run_rl_vs_sft_study(config: RlVsSftConfig, say: Callable[[str], None]) -> dict:
    """Run (or resume) the study over every seed; writes ``results.json``, ``summary.md``, ``ood_vs_id.png``."""
    out = Path(config.output_dir)
    write_run_record(out, config)
    by_seed = [_study_seed(config, seed, say) for seed in config.seeds]
    headroom_ok = all(r["headroom"]["pass_at_k"] - r["headroom"]["pass_at_1"] >= PRECONDITION_HEADROOM
                      for r in by_seed)
    results = {"seeds": by_seed, **_decide(by_seed, headroom_ok), "config": asdict(config),
               "preregistration": "docs/study-rlvr-vs-sft.md"}
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=str))
    write_report(out, results)
    say(f"   verdict: {results['verdict']}")
    return results
