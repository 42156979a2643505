"""The budget study: at what training budget, if any, does RLVR match or beat label SFT?

For each seed the demo's benchmark, base and cold start are made (or reused) as ``r1omni demo``
makes them; then one label-SFT run (from the base) and one GRPO run (from the cold start) each train
to the largest budget and save their model at every budget on the way (``snapshot_steps``: one run
per method and seed, not one per budget, so each run keeps a constant learning rate: a snapshot is
then what a run of that budget would have been, up to its schedule). Every snapshot is evaluated on
the demo's evaluation splits; per budget and split the study reports both methods' mean WAR over the
seeds with its standard error, and the paired difference RLVR − label SFT (per clip, per seed, the
seeds pooled as independent runs). ``summary.md`` holds the table, the plot (WAR against clip-views,
bands of one standard error) and one sentence per split that answers the question.

Budgets are clip-views (clips seen in training); GRPO sees ``grpo_clips_per_step`` clips a step
with G completions each, SFT ``clips_per_step``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from r1omni.atomic import atomic_write_bytes, atomic_write_text, is_complete
from r1omni.clips import MediaCache
from r1omni.demo.config import DemoConfig, StageBudget, split_key
from r1omni.demo.progress import StageBar
from r1omni.demo.stages import run_grpo, run_sft, train_starting_points
from r1omni.demo.stats import correct, paired, pooled, war
from r1omni.evaluate import EvalOptions, evaluate
from r1omni.labels import get_label_set
from r1omni.models import load_policy
from r1omni.provenance import write_run_record
from r1omni.schema import read_samples
from r1omni.synth import generate_benchmark
from r1omni.train.checkpoint import SNAPSHOT_DIR

__all__ = ["StudyConfig", "run_budget_study", "METHODS"]

METHODS = ("label_sft", "rlvr")


@dataclass
class StudyConfig:
    """The seeds, the budgets (clip-views) and the demo recipe the study runs."""

    output_dir: str = "demo_study"
    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[int, ...] = (640, 1280, 2560, 5120)
    """Clip-views at which both methods' models are saved and evaluated; each a multiple of both methods'
    clips per step."""
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(attribution_clips=0, grounding_weight=0))

    def __post_init__(self) -> None:
        if not self.seeds or not self.budgets or list(self.budgets) != sorted(set(self.budgets)):
            raise ValueError("StudyConfig needs seeds and strictly increasing budgets")
        for size in (self.demo.clips_per_step, self.demo.grpo_clips_per_step):
            if any(budget % size for budget in self.budgets):
                raise ValueError(f"every budget must be a multiple of {size} clips per step, got {self.budgets}")

    @classmethod
    def quick(cls, output_dir: str = "demo_study_quick", seeds: tuple[int, ...] = (0, 1)) -> "StudyConfig":
        demo = replace(DemoConfig.quick(), attribution_clips=0, grounding_weight=0,
                       eval_splits=("test_id", "test_ood"))
        return cls(output_dir=output_dir, seeds=seeds, budgets=(32, 64, 96, 128), demo=demo)


def _steps(config: StudyConfig, method: str) -> list[int]:
    per_step = config.demo.clips_per_step if method == "label_sft" else config.demo.grpo_clips_per_step
    return [budget // per_step for budget in config.budgets]


def _train_method(config: StudyConfig, demo: DemoConfig, method: str, start: Path, data: Path, run: Path,
                  media: MediaCache) -> None:
    """One long run of ``method`` with a model saved at every budget (skipped when already complete)."""
    steps = _steps(config, method)
    if is_complete(run / "final") and all(is_complete(run / SNAPSHOT_DIR / f"step-{s:07d}") for s in steps):
        return
    if method == "label_sft":
        budget = StageBudget(steps=steps[-1], lr=demo.label_sft.lr, trainable=demo.label_sft.trainable)
        run_sft(demo, str(start), data, "label", run, budget, snapshot_steps=steps, schedule="constant", media=media)
    else:
        run_grpo(demo, str(start), data, run, steps=steps[-1], snapshot_steps=steps, media=media)


def _study_seed(config: StudyConfig, seed: int, say: Callable[[str], None], progress: bool) -> dict:
    """Train and evaluate both methods of one seed; returns {method: {budget: {split key: eval folder}}}."""
    out = Path(config.output_dir) / f"seed-{seed}"
    demo = replace(config.demo, seed=seed, output_dir=str(out))
    manifests = generate_benchmark(out / "benchmark", preset=demo.synth_preset, seed=seed, progress=False)
    stages = train_starting_points(demo, out, manifests, say)
    starts = {"label_sft": stages.models["base"], "rlvr": stages.models["cold_start_sft"]}
    labels = get_label_set("synth")
    options = EvalOptions(prompt=demo.prompt, batch_size=demo.eval_batch_size, max_new_tokens=demo.max_new_tokens)
    folders: dict = {}
    for method in METHODS:
        run = out / "study" / method
        say(f"   seed {seed}: {method} to {config.budgets[-1]} clip-views, a model at each of {list(config.budgets)}")
        _train_method(config, demo, method, starts[method], manifests["train"], run, stages.media)
        folders[method] = {}
        samples = {split: read_samples(manifests[split]) for split in demo.eval_splits}
        with StageBar(len(config.budgets) * sum(map(len, samples.values())), f"seed {seed} {method} evaluation",
                      progress) as bar:
            for budget, step in zip(config.budgets, _steps(config, method)):
                policy = load_policy(run / SNAPSHOT_DIR / f"step-{step:07d}")
                policy.module.eval()
                folders[method][budget] = {}
                for split in demo.eval_splits:
                    target = out / "study" / "eval" / method / str(budget) / split_key(split)
                    evaluate(policy, samples[split], target, labels, options, media=stages.media,
                             progress=bar.part())
                    folders[method][budget][split_key(split)] = target
    return folders


def _verdict(curve: list[dict], budgets: tuple[int, ...]) -> str:
    """One sentence: at which budget RLVR − label SFT first stops trailing by more than two standard errors,
    and whether it falls behind again at a larger one."""
    states = ["beats" if p["diff"] > 2 * p["se"] else "matches" if p["diff"] >= -2 * p["se"] else "trails"
              for p in curve]
    detail = ", ".join(f"{state} at {budget:,} ({point['diff']:+.3f} ± {point['se']:.3f})"
                       for budget, state, point in zip(budgets, states, curve))
    reached = next((budget for budget, state in zip(budgets, states) if state != "trails"), None)
    if reached is None:
        return f"RLVR does not match label SFT at any budget up to {budgets[-1]:,} clip-views: {detail}"
    # Both near chance at the smallest budgets "match" too: say when label SFT pulls ahead again.
    behind = next((budget for budget, state in zip(budgets, states) if budget > reached and state == "trails"), None)
    if behind is not None:
        return (f"RLVR matches or beats label SFT from {reached:,} clip-views but trails it again from {behind:,}: "
                f"{detail}")
    return f"RLVR first matches or beats label SFT at {reached:,} clip-views: {detail}"


def run_budget_study(config: StudyConfig, say: Callable[[str], None], progress: bool = True) -> dict:
    """Run (or resume) the study over every seed; writes ``summary.json``, ``summary.md``, ``budget.png``.
    ``progress``: a bar over each method's evaluations (on a terminal only)."""
    out = Path(config.output_dir)
    write_run_record(out, config)
    by_seed = {seed: _study_seed(config, seed, say, progress) for seed in config.seeds}
    keys = [split_key(split) for split in config.demo.eval_splits]
    table: dict = {key: {"budgets": list(config.budgets)} for key in keys}
    for key in keys:
        for method in METHODS:
            table[key][method] = [pooled([war(by_seed[s][method][b][key]) for s in config.seeds], "war")
                                  for b in config.budgets]
        diffs = []
        for budget in config.budgets:
            per_seed = []
            for seed in config.seeds:
                a, b = (correct(by_seed[seed][m][budget][key]) for m in ("rlvr", "label_sft"))
                ids = sorted(set(a) & set(b))
                per_seed.append(paired([a[i] for i in ids], [b[i] for i in ids]))
            diffs.append(pooled(per_seed))
        table[key]["rlvr_minus_label_sft"] = diffs
        table[key]["answer"] = _verdict(diffs, config.budgets)
    summary = {"seeds": list(config.seeds), "budgets": list(config.budgets), "splits": table,
               "config": asdict(config)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    atomic_write_bytes(out / "budget.png", _plot(table, keys))
    atomic_write_text(out / "summary.md", _markdown(table, keys, config))
    for key in keys:
        say(f"   {key.upper()}: {table[key]['answer']}")
    return summary


def _markdown(table: dict, keys: list[str], config: StudyConfig) -> str:
    lines = [f"# Budget study: RLVR against label SFT ({len(config.seeds)} seeds: {list(config.seeds)})", "",
             "WAR (normalized track), mean over seeds ± one standard error; the paired difference is per clip "
             "and seed, the seeds pooled as independent runs.", "", "![WAR against clip-views](budget.png)", ""]
    for key in keys:
        rows = table[key]
        lines += [f"## {key.upper()}", "", f"**{rows['answer']}.**", "",
                  "| clip-views | label SFT | RLVR | RLVR − label SFT |", "|---:|---:|---:|---:|"]
        for i, budget in enumerate(rows["budgets"]):
            sft, rl, diff = rows["label_sft"][i], rows["rlvr"][i], rows["rlvr_minus_label_sft"][i]
            lines.append(f"| {budget:,} | {sft['war']:.3f} ± {sft['se']:.3f} | {rl['war']:.3f} ± {rl['se']:.3f} | "
                         f"{diff['diff']:+.3f} ± {diff['se']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _plot(table: dict, keys: list[str]) -> bytes:
    from r1omni.plots import figure, png_bytes

    fig, axes = figure(1, len(keys), figsize=(4.6 * len(keys), 3.4), sharey=True, squeeze=False)
    for ax, key in zip(axes[0], keys):
        budgets = table[key]["budgets"]
        for method, name in (("label_sft", "label SFT"), ("rlvr", "RLVR (GRPO)")):
            mean = [p["war"] for p in table[key][method]]
            se = [p["se"] for p in table[key][method]]
            ax.plot(budgets, mean, marker="o", label=name)
            ax.fill_between(budgets, [m - s for m, s in zip(mean, se)], [m + s for m, s in zip(mean, se)], alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
        ax.set_xlabel("clip-views")
        ax.set_title(f"{key.upper()} WAR")
        ax.axhline(1 / 7, color="grey", lw=0.8, ls=":")
    axes[0][0].set_ylabel("WAR")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig, dpi=110)
