"""The demo's report folder: Markdown with every number the run printed, and the plots behind them.

Writes ``OUT/report.md`` and ``OUT/plots/``: the Table-1-shaped result as bars, per-class recall,
confusion matrices of every variant in and out of distribution, and GRPO's reward / accuracy /
format / KL / length curves. Reads only files the demo wrote; computes nothing new.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from r1omni.atomic import atomic_write_text
from r1omni.metrics import PREDICTIONS
from r1omni.schema import read_samples

__all__ = ["write_report"]

_NAMES = {"random_init": "random init", "base": "base (perception pre-trained)",
          "cold_start_sft": "cold-start SFT (EMER-SFT)", "label_sft": "label SFT (MAFW-DFEW-SFT)",
          "rlvr": "RLVR (GRPO from cold start)", "rlvr_grounding": "RLVR + grounding reward"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def _table_png(results: dict, path: Path) -> None:
    plt = _plt()
    names = list(results["variants"])
    columns = [("id", "war"), ("id", "uar"), ("ood", "war"), ("ood", "uar")]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [100 * results["variants"][name][split][metric] for split, metric in columns]
        bars = ax.bar([c + i * width for c in range(len(columns))], values, width, label=_NAMES.get(name, name))
        ax.bar_label(bars, fmt="%.0f", fontsize=6)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(columns))],
                  [f"{split.upper()} {metric.upper()}" for split, metric in columns])
    ax.set_ylabel("%")
    ax.axhline(100 / 7, color="grey", lw=0.8, ls=":", label="chance (1/7)")
    ax.set_title("Generated benchmark: the paper's Table 1, measured here")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _recall_png(metrics: dict, path: Path) -> None:
    plt = _plt()
    names = [n for n in metrics if n != "random_init"]
    labels = metrics[names[0]]["id"]["normalized"]["labels"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    width = 0.8 / len(names)
    for ax, split in zip(axes, ("id", "ood")):
        for i, name in enumerate(names):
            recall = metrics[name][split]["normalized"]["per_class_recall"]
            ax.bar([c + i * width for c in range(len(labels))], [100 * (recall[l] or 0) for l in labels], width,
                   label=_NAMES.get(name, name))
        ax.set_xticks([c + 0.4 - width / 2 for c in range(len(labels))], labels, rotation=30)
        ax.set_title(f"per-class recall, {split.upper()}")
    axes[0].set_ylabel("%")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _grpo_png(metrics_path: Path, path: Path) -> bool:
    if not metrics_path.is_file():
        return False
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    if not rows:
        return False
    plt = _plt()
    keys = [k for k in ("reward", "accuracy", "format", "kl", "completion_length", "groups_with_signal")
            if k in rows[0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.8))
    steps = [r["step"] for r in rows]
    for ax, key in zip(axes, keys):
        values = [r[key] for r in rows]
        ax.plot(steps, values, lw=0.7, alpha=0.5)
        window = max(1, len(values) // 20)
        smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                  for i in range(len(values))]
        ax.plot(steps, smooth, lw=1.5)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle("GRPO (sampled completions, T as configured)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def _examples(evals: Path, manifests: dict, variants: list[str]) -> list[str]:
    """Three in-distribution clips (face-, voice- and both-carried when available) with every
    variant's output."""
    samples = read_samples(manifests["test_id"])
    chosen = []
    for modality in ("face", "voice", "both"):
        for sample in samples:
            if sample.meta.get("label_modality") == modality and sample not in chosen:
                chosen.append(sample)
                break
    outputs = {}
    for name in variants:
        rows = [json.loads(line) for line in (evals / name / "id" / PREDICTIONS).read_text().splitlines()
                if line]
        outputs[name] = {r["id"]: r for r in rows}
    lines = []
    for sample in chosen[:3]:
        lines += [f"### {sample.id}: label **{sample.label}**, carried by the {sample.meta.get('label_modality')}",
                  "", f"- true cues: {sample.meta.get('description', '')}",
                  f"- subtitle: {sample.subtitle!r}", ""]
        for name in variants:
            row = outputs[name].get(sample.id)
            if row is not None:
                text = (row["output"] or "").replace("\n", " ")
                lines.append(f"- **{_NAMES.get(name, name)}** → `{row['pred']}`: {text}")
        lines.append("")
    return lines


def write_report(out: Path, results: dict, metrics: dict, evals: Path, runs: Path, manifests: dict) -> None:
    plots = out / "plots"
    _table_png(results, plots / "table.png")
    _recall_png(metrics, plots / "per_class_recall.png")
    has_curves = _grpo_png(runs / "rlvr" / "metrics.jsonl", plots / "grpo_curves.png")
    for name in metrics:
        for split in ("id", "ood"):
            source = evals / name / split / "confusion_normalized.png"
            if source.is_file():
                shutil.copyfile(source, plots / f"confusion_{name}_{split}.png")

    env = results["environment"]
    lines = ["# r1omni demo: the R1-Omni pipeline on the generated benchmark", "",
             f"Wall time {results['wall_seconds'] / 60:.1f} min on {env['cpu_model']} ({env['cpu_count']} CPUs, "
             f"{env['torch_threads']} torch threads; python {env['python']}, torch {env['torch']}, "
             f"transformers {env['transformers']}, av {env['av']}, numpy {env['numpy']}; "
             f"install digest {env['installed_digest']}). "
             "Scores use the normalized track (answers mapped to the 7 classes); strict-track numbers are in "
             "results.json. Paired differences are mean per-clip correctness differences on the same clips, "
             "± one standard error.", "",
             "| variant | clip-views | ID WAR | ID UAR | ID format | OOD WAR | OOD UAR | OOD format |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in results["variants"].items():
        lines.append(f"| {_NAMES.get(name, name)} | {row['clip_views']} | {row['id']['war']:.3f} | "
                     f"{row['id']['uar']:.3f} | {row['id']['format_rate']:.2f} | {row['ood']['war']:.3f} | "
                     f"{row['ood']['uar']:.3f} | {row['ood']['format_rate']:.2f} |")
    lines += ["", "| paired difference | ID | OOD |", "|---|---:|---:|"]
    for name, by_split in results["paired"].items():
        lines.append(f"| {name} | {by_split['id']['diff']:+.3f} ± {by_split['id']['se']:.3f} | "
                     f"{by_split['ood']['diff']:+.3f} ± {by_split['ood']['se']:.3f} |")
    lines += ["", "![table](plots/table.png)", "", "![per-class recall](plots/per_class_recall.png)", ""]
    if has_curves:
        lines += ["![GRPO curves](plots/grpo_curves.png)", ""]
    lines += ["## Reasoning quality (in distribution)", "",
              "| variant | format | cites visual | cites audio | voice-only clips: cites voice | face-only clips: "
              "cites face | reasoning = answer | cue claims per answer | hallucinated cue claims | "
              "subtitle quoted right |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in results["variants"].items():
        r = row["id"].get("reasoning", {})
        lines.append(f"| {_NAMES.get(name, name)} | {r.get('format_rate', 0):.2f} | "
                     f"{r.get('mentions_visual_rate', 0):.2f} | {r.get('mentions_audio_rate', 0):.2f} | "
                     f"{r.get('voice_only_cites_voice_rate', 0):.2f} | {r.get('face_only_cites_face_rate', 0):.2f} | "
                     f"{r.get('reasoning_answer_agreement', 0):.2f} | {r.get('cue_claims_per_clip', 0):.1f} | "
                     f"{r.get('hallucination_rate', 0):.3f} | {r.get('subtitle_quote_accuracy', 0):.2f} |")
    if "paired_hallucination" in results:
        by_split = results["paired_hallucination"]
        lines += ["", "Hallucinated share of a clip's cue claims, RLVR + grounding − RLVR, paired over the clips "
                  "where both make claims: " + ", ".join(
                      f"{key.upper()} {by_split[key]['diff']:+.3f} ± {by_split[key]['se']:.3f} (n = {by_split[key]['n']})"
                      for key in ("id", "ood"))]
    attributed = {n: row["attribution"] for n, row in results["variants"].items() if "attribution" in row}
    if attributed:
        lines += ["", "## Modality attribution (in distribution; the carrying modality is known)", "",
                  "| variant | names the carrier | decisive: video | audio | both | neither | "
                  "flip w/o audio | flip w/o video |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, summary in attributed.items():
            decisive = summary.get("decisive", {})
            lines.append(f"| {_NAMES.get(name, name)} | {summary.get('attribution_accuracy', 0):.2f} | "
                         f"{decisive.get('video', 0):.2f} | {decisive.get('audio', 0):.2f} | "
                         f"{decisive.get('both', 0):.2f} | {decisive.get('neither', 0):.2f} | "
                         f"{summary['no_audio']['flip_rate']:.2f} | {summary['no_video']['flip_rate']:.2f} |")
    lines += ["", "## Example outputs", ""] + _examples(evals, manifests, list(results["variants"]))
    lines += ["## Confusion matrices", ""]
    for name in metrics:
        lines.append(f"![{name} ID](plots/confusion_{name}_id.png) ![{name} OOD](plots/confusion_{name}_ood.png)")
    lines += ["", "## Stage timings (seconds)", ""]
    lines += [f"- {stage}: {seconds:.1f}" for stage, seconds in results["stage_seconds"].items()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
