"""The RLVR-vs-SFT study's report: ``summary.md`` and ``ood_vs_id.png`` from its ``results.json``.

Kept apart from the runner (:mod:`r1omni.demo.rl_vs_sft`) so that a finished study can be reported again
without training or sampling anything (:func:`write_report`), and so that the report shows every metric
the pre-registration (``docs/study-rlvr-vs-sft.md``, "What will be reported") lists: per arm, seed and
model choice WAR and UAR on each test split, pass@1 / pass@k, the KL to the start and to the base,
accuracy by carrying modality, hallucinated claims; the rule on the shifted splits and on each split
alone; the validation curve behind the matched-accuracy choice; the precondition; DC-SFT's selection.
UAR is read from each evaluation's ``metrics.json`` (the normalized track), the one place it is computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean

from r1omni.atomic import atomic_write_bytes, atomic_write_text
from r1omni.demo.rule import PRECONDITION_HEADROOM
from r1omni.metrics import METRICS
from r1omni.synth.config import CARRIERS, TEST_SPLITS

__all__ = ["write_report", "summary_markdown", "ood_vs_id_png", "ARMS", "SHIFTED"]

ARMS = ("rlvr", "label_sft", "dc_sft", "sft_rlvr")
SHIFTED = ("test_ood", "test_mix")
CHOICES = ("final", "matched")
SHORT = {"test_id": "ID", "test_ood": "OOD", "test_mix": "MIX"}


def write_report(output_dir: str | Path, results: dict | None = None) -> None:
    """Write ``summary.md`` and ``ood_vs_id.png`` into ``output_dir`` (from its ``results.json`` if no
    ``results`` are given)."""
    out = Path(output_dir)
    if results is None:
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    atomic_write_bytes(out / "ood_vs_id.png", ood_vs_id_png(results["seeds"]))
    atomic_write_text(out / "summary.md", summary_markdown(results))


def _uar(split_row: dict) -> float:
    metrics = json.loads((Path(split_row["folder"]) / METRICS).read_text(encoding="utf-8"))
    return metrics["normalized"]["uar"]


def _figures(row: dict) -> dict[str, float | None]:
    """One chosen model's figures, flat: ``<split> WAR``, ``<split> UAR``, pass@, carriers, claims, KL."""
    flat: dict[str, float | None] = {}
    for split in TEST_SPLITS:
        s, name = row["splits"][split], SHORT[split]
        flat |= {f"{name} WAR": s["war"], f"{name} UAR": _uar(s), f"{name} pass@1": s["pass_at_1"],
                 f"{name} pass@k": s["pass_at_k"], f"{name} hallucinated": s.get("hallucinated")}
        flat |= {f"{name} {c}": s["by_carrier"].get(c) for c in CARRIERS}
    flat["KL start"] = row["kl_to_start"]["per_completion"]
    flat["KL base"] = row["kl_to_base"]["per_completion"]
    return flat


def _rows(record: dict) -> dict[str, dict]:
    """One seed's table rows: each arm's final and matched models, then the starting points (not compared)."""
    rows = {f"{arm} ({which})": _figures(record["test"][arm][which]) for which in CHOICES for arm in ARMS}
    rows |= {f"{name.replace('_', ' ')} (start)": _figures(row) for name, row in record["starting_points"].items()}
    return rows


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _mean(values: list[float | None]) -> float | None:
    """The mean over seeds; None (shown "–") when any seed has no such figure."""
    return None if any(v is None for v in values) else mean(values)


def _table(rows: list[tuple[str, dict]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(["arm (models)", *columns]) + " |", "|---" + "|---:" * len(columns) + "|"]
    for name, flat in rows:
        lines.append("| " + " | ".join([name, *(_cell(flat[c]) for c in columns)]) + " |")
    return lines


def _metric_tables(by_arm: list[tuple[str, dict]], k: int) -> list[str]:
    """The three tables a set of rows (means over seeds, or one seed) is shown in."""
    accuracy = [f"{SHORT[s]} {m}" for s in TEST_SPLITS for m in ("WAR", "UAR")] + ["KL start", "KL base"]
    sampled = [f"{SHORT[s]} pass@{p}" for s in TEST_SPLITS for p in ("1", "k")]
    carriers = [f"{SHORT[s]} {c}" for s in TEST_SPLITS for c in CARRIERS]
    claims = [f"{SHORT[s]} hallucinated" for s in TEST_SPLITS]
    return [*_table(by_arm, accuracy), "", f"pass@1 and pass@{k} ({k} answers a clip sampled at GRPO's "
            "temperature):", "", *_table(by_arm, sampled), "", "Accuracy by carrying modality:", "",
            *_table(by_arm, carriers), "", "Share of cue claims the clip's true cues contradict (reasoning arms):",
            "", *_table(by_arm, claims), ""]


def _rule_lines(results: dict) -> list[str]:
    lines = ["| hypothesis | X − Y | models | shifted (primary) | per seed | outcome | "
             + " | ".join(SHORT[s] for s in TEST_SPLITS) + " |", "|---|---|---|---|---|---|" + "---|" * 3]
    for name, by_split in results["hypotheses"].items():
        h = by_split["shifted"]
        per_seed = ", ".join(f"{d:+.3f}" for d in h["per_seed"])
        secondary = [f"{by_split[s]['diff']:+.3f} ± {by_split[s]['se']:.3f} ({by_split[s]['outcome']})"
                     for s in TEST_SPLITS]
        lines.append(f"| {name} | {h['x']} − {h['y']} | {h['models']} | {h['diff']:+.3f} ± {h['se']:.3f} | "
                     f"{per_seed} | **{h['outcome']}** | " + " | ".join(secondary) + " |")
    return lines


def _validation_lines(results: dict) -> list[str]:
    lines = ["| seed | arm | val_id WAR along the budget (val_ood) | matched |", "|---|---|---|---:|"]
    for record in results["seeds"]:
        validation = record["validation"]
        for arm in ARMS:
            curve = " ".join(f"{w['val_id']:.3f} ({w['val_ood']:.3f})" for w in validation["war"][arm])
            lines.append(f"| {record['seed']} | {arm} | {curve} | {validation['matched'][arm] + 1} of "
                         f"{len(validation['war'][arm])} |")
    lines.append("")
    lines.append("Matched target (the lowest final val_id WAR of the four arms): " + ", ".join(
        f"seed {r['seed']} {r['validation']['target']:.3f}" for r in results["seeds"]))
    return lines


def summary_markdown(results: dict) -> str:
    seeds = [r["seed"] for r in results["seeds"]]
    k = results.get("config", {}).get("k", "k")
    per_seed = {r["seed"]: _rows(r) for r in results["seeds"]}
    names = list(per_seed[seeds[0]])
    columns = list(per_seed[seeds[0]][names[0]])
    means = [(name, {c: _mean([per_seed[s][name][c] for s in seeds]) for c in columns}) for name in names]
    lines = [f"# RLVR against SFT, pre-registered (docs/study-rlvr-vs-sft.md), seeds {seeds}", "",
             f"**Verdict: {results['verdict']}**", "", "![OOD against ID accuracy](ood_vs_id.png)", "",
             "## The rule", "", "Paired differences X − Y in accuracy, ± their standard error over the seeds; "
             "primary: `test_ood` and `test_mix` together; each split alone is a secondary result.", "",
             *_rule_lines(results), "",
             f"Precondition (cold start pass@{k} − pass@1 on val_ood ≥ {PRECONDITION_HEADROOM:.2f} in every seed) "
             f"{'met' if results['precondition_met'] else 'not met'}: " + ", ".join(
                 f"seed {r['seed']} {r['headroom']['pass_at_k'] - r['headroom']['pass_at_1']:+.3f} "
                 f"({r['headroom']['pass_at_1']:.3f} → {r['headroom']['pass_at_k']:.3f})" for r in results["seeds"]),
             "", "DC-SFT's clips of medium difficulty: " + ", ".join(
                 f"seed {r['seed']} {r['dc_sft']['medium']} of {r['dc_sft']['clips']}"
                 + (" (none: trained on every clip)" if r["dc_sft"]["fallback_to_all"] else "")
                 for r in results["seeds"]), "",
             f"## Every metric, mean over seeds {seeds}", "",
             "Test splits; KL in nats per completion on val_id prompts (to the arm's start, to the base). The rows "
             "marked (start) are the base and the cold start, reported beside the arms, not compared by the rule.",
             "",
             *_metric_tables(means, k)]
    for seed in seeds:
        lines += [f"## Seed {seed}", "", *_metric_tables(list(per_seed[seed].items()), k)]
    lines += ["## Validation and the matched-accuracy models", "", *_validation_lines(results), ""]
    return "\n".join(lines)


def _ood(row: dict) -> float:
    return sum(row["splits"][s]["war"] for s in SHIFTED) / len(SHIFTED)


def ood_vs_id_png(by_seed: list[dict]) -> bytes:
    """OOD WAR (the shifted splits' mean) against ID WAR, one point per arm, seed and model choice."""
    from r1omni.plots import figure, png_bytes

    fig, axes = figure(1, 1, figsize=(5.2, 4.2), squeeze=False)
    ax = axes[0][0]
    for index, arm in enumerate(ARMS):
        for which, marker in (("final", "o"), ("matched", "x")):
            rows = [r["test"][arm][which] for r in by_seed]
            ax.scatter([row["splits"]["test_id"]["war"] for row in rows], [_ood(row) for row in rows],
                       marker=marker, color=f"C{index}", label=f"{arm} ({which})")
    ax.set_xlabel("ID WAR (test_id)")
    ax.set_ylabel("OOD WAR (test_ood, test_mix)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig, dpi=110)
