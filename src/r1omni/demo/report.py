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
from r1omni.plots import figure, save_png
from r1omni.schema import read_samples

__all__ = ["write_report"]

_NAMES = {"random_init": "random init", "base": "base (instruction pre-trained)",
          "cold_start_sft": "cold-start SFT (EMER-SFT)", "label_sft": "label SFT (MAFW-DFEW-SFT)",
          "rlvr": "RLVR (GRPO from cold start)", "rlvr_grounding": "RLVR + grounding reward"}


def _keys(results: dict) -> list[str]:
    """The evaluation splits' result keys, in order (``id``, ``ood``, ``mix``, or the validation splits)."""
    return [split.removeprefix("test_") for split in results["eval_splits"]]


def _table_png(results: dict, path: Path) -> None:
    names = list(results["variants"])
    columns = [(key, metric) for key in _keys(results) for metric in ("war", "uar")]
    fig, ax = figure(figsize=(9, 4))
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
    save_png(fig, path)


def _recall_png(metrics: dict, keys: list[str], path: Path) -> None:
    names = [n for n in metrics if n != "random_init"]
    labels = metrics[names[0]][keys[0]]["normalized"]["labels"]
    fig, axes = figure(1, len(keys), figsize=(5.5 * len(keys), 3.6), sharey=True, squeeze=False)
    axes = axes[0]
    width = 0.8 / len(names)
    for ax, split in zip(axes, keys):
        for i, name in enumerate(names):
            recall = metrics[name][split]["normalized"]["per_class_recall"]
            ax.bar([c + i * width for c in range(len(labels))], [100 * (recall[label] or 0) for label in labels], width,
                   label=_NAMES.get(name, name))
        ax.set_xticks([c + 0.4 - width / 2 for c in range(len(labels))], labels, rotation=30)
        ax.set_title(f"per-class recall, {split.upper()}")
    axes[0].set_ylabel("%")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def _grpo_png(metrics_path: Path, path: Path) -> bool:
    if not metrics_path.is_file():
        return False
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    if not rows:
        return False
    keys = [k for k in ("reward", "accuracy", "format", "kl", "completion_length", "groups_with_signal")
            if k in rows[0]]
    fig, axes = figure(1, len(keys), figsize=(3 * len(keys), 2.8))
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
    save_png(fig, path)
    return True


def _examples(evals: Path, manifests: dict, variants: list[str], split: str) -> list[str]:
    """Three clips of ``split`` (face-, voice- and both-carried when available) with every variant's output."""
    samples = read_samples(manifests[split])
    chosen = []
    for modality in ("face", "voice", "both"):
        for sample in samples:
            if sample.meta.get("label_modality") == modality and sample not in chosen:
                chosen.append(sample)
                break
    outputs = {}
    for name in variants:
        rows = [json.loads(line) for line in
                (evals / name / split.removeprefix("test_") / PREDICTIONS).read_text().splitlines() if line]
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
    keys = _keys(results)
    plots = out / "plots"
    _table_png(results, plots / "table.png")
    _recall_png(metrics, keys, plots / "per_class_recall.png")
    has_curves = _grpo_png(runs / "rlvr" / "metrics.jsonl", plots / "grpo_curves.png")
    for name in metrics:
        for key in keys:
            source = evals / name / key / "confusion_normalized.png"
            if source.is_file():
                shutil.copyfile(source, plots / f"confusion_{name}_{key}.png")
    lines = _summary_lines(results, keys)
    lines += ["", "![table](plots/table.png)", "", "![per-class recall](plots/per_class_recall.png)", ""]
    if has_curves:
        lines += ["![GRPO curves](plots/grpo_curves.png)", ""]
    lines += _carrier_lines(results, keys) + _reasoning_lines(results, keys[0]) + _attribution_lines(results)
    lines += _balance_lines(results)
    lines += ["", "## Example outputs", ""] + _examples(evals, manifests, list(results["variants"]),
                                                        results["eval_splits"][0])
    lines += ["## Confusion matrices", ""]
    for name in metrics:
        lines.append(" ".join(f"![{name} {key}](plots/confusion_{name}_{key}.png)" for key in keys))
    lines += ["", "## Stage timings (seconds)", ""]
    lines += [f"- {stage}: {seconds:.1f}" for stage, seconds in results["stage_seconds"].items()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _summary_lines(results: dict, keys: list[str]) -> list[str]:
    """The header, the main table (budget and WAR / UAR / format per split) and the paired differences."""
    env = results["environment"]
    lines = ["# r1omni demo: the R1-Omni pipeline on the generated benchmark", "",
             f"Wall time {results['wall_seconds'] / 60:.1f} min on {env['cpu_model']} ({env['cpu_count']} CPUs, "
             f"{env['torch_threads']} torch threads; python {env['python']}, torch {env['torch']}, "
             f"transformers {env['transformers']}, av {env['av']}, numpy {env['numpy']}; "
             f"install digest {env['installed_digest']}; CPU level {env['isa']['machine']}, kernels capped at "
             f"{env['isa']['pinned'] or 'nothing'}; benchmark digest {results['benchmark_digest']['all']}). "
             f"Evaluated on {', '.join(results['eval_splits'])}. "
             "Scores use the normalized track (answers mapped to the 7 classes); strict-track numbers are in "
             "results.json. Paired differences are mean per-clip correctness differences on the same clips, "
             "± one standard error.", "",
             "| variant | clip-views | generated tokens | train s | " + " | ".join(
                 f"{key.upper()} WAR | {key.upper()} UAR | {key.upper()} format" for key in keys) + " |",
             "|---|---:|---:|---:|" + "---:|" * (3 * len(keys))]
    for name, row in results["variants"].items():
        budget = row.get("budget", {})
        lines.append(f"| {_NAMES.get(name, name)} | {row['clip_views']} | {budget.get('generated_tokens', 0)} | "
                     f"{budget.get('wall_seconds', 0):.0f} | " + " | ".join(
                         f"{row[key]['war']:.3f} | {row[key]['uar']:.3f} | {row[key]['format_rate']:.2f}"
                         for key in keys) + " |")
    lines += ["", "| paired difference | " + " | ".join(key.upper() for key in keys) + " |",
              "|---|" + "---:|" * len(keys)]
    for name, by_split in results["paired"].items():
        lines.append(f"| {name} | " + " | ".join(f"{by_split[key]['diff']:+.3f} ± {by_split[key]['se']:.3f}"
                                               for key in keys) + " |")
    return lines


def _carrier_lines(results: dict, keys: list[str]) -> list[str]:
    """Accuracy per carrying modality: can each modality be learned, and does the model use it?"""
    carriers = ("face", "voice", "both", "conflict")
    lines = ["## Accuracy by the modality that carries the label", "",
             "| variant | " + " | ".join(f"{key.upper()} {c}" for key in keys for c in carriers) + " |",
             "|---|" + "---:|" * (len(keys) * len(carriers))]
    for name, row in results["variants"].items():
        cells = [row[key].get("by_carrier", {}).get(c) for key in keys for c in carriers]
        lines.append(f"| {_NAMES.get(name, name)} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in cells)
                     + " |")
    return lines + [""]


def _reasoning_lines(results: dict, key: str) -> list[str]:
    lines = [f"## Reasoning quality ({key})", "",
             "| variant | format | cites visual | cites audio | voice-only clips: cites voice | face-only clips: "
             "cites face | reasoning = answer | cue claims per answer | hallucinated cue claims | "
             "subtitle quoted right |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in results["variants"].items():
        r = row[key].get("reasoning", {})
        lines.append(f"| {_NAMES.get(name, name)} | {r.get('format_rate', 0):.2f} | "
                     f"{r.get('mentions_visual_rate', 0):.2f} | {r.get('mentions_audio_rate', 0):.2f} | "
                     f"{r.get('voice_only_cites_voice_rate', 0):.2f} | {r.get('face_only_cites_face_rate', 0):.2f} | "
                     f"{r.get('reasoning_answer_agreement', 0):.2f} | {r.get('cue_claims_per_clip', 0):.1f} | "
                     f"{r.get('hallucination_rate', 0):.3f} | {r.get('subtitle_quote_accuracy', 0):.2f} |")
    if "paired_hallucination" in results:
        by_split = results["paired_hallucination"]
        lines += ["", "Hallucinated share of a clip's cue claims, RLVR + grounding − RLVR, paired over the clips "
                  "where both make claims: " + ", ".join(
                      f"{k.upper()} {v['diff']:+.3f} ± {v['se']:.3f} (n = {v['n']})" for k, v in by_split.items())]
    return lines


def _attribution_lines(results: dict) -> list[str]:
    attributed = {n: row["attribution"] for n, row in results["variants"].items() if "attribution" in row}
    if not attributed:
        return []
    lines = ["", "## Modality attribution (in distribution; the carrying modality is known)", "",
             f"A stream is removed by {_removal(results)}. Where the media decide: the clips whose answer changes "
             "when both streams are removed (the others have nothing a removal can show).", "",
             "| variant | names the carrier | where the media decide | decisive: video | audio | both | neither | "
             "flip w/o audio | flip w/o video | video decisive on face-carried clips |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, summary in attributed.items():
        decisive = summary.get("decisive", {})
        lines.append(f"| {_NAMES.get(name, name)} | {summary.get('attribution_accuracy', 0):.2f} | "
                     f"{_media_decided(summary)} | {decisive.get('video', 0):.2f} | {decisive.get('audio', 0):.2f} | "
                     f"{decisive.get('both', 0):.2f} | {decisive.get('neither', 0):.2f} | "
                     f"{summary['no_audio']['flip_rate']:.2f} | {summary['no_video']['flip_rate']:.2f} | "
                     f"{_face_decisive(summary)} |")
    return lines


def _removal(results: dict) -> str:
    """How the run removed a stream, in words (results from before the setting existed blanked)."""
    removal = results.get("attribution_removal", {"method": "blank"})
    if removal["method"] == "reference":
        return f"putting a reference clip's in its place ({removal['reference']}, labelled neutral)"
    return {"blank": "grey frames / silence", "omit": "leaving it out of the prompt"}[removal["method"]]


def _media_decided(summary: dict) -> str:
    """Names the carrier among the clips whose answer changes without any media, with their count."""
    decided = summary.get("media_decided")
    if not decided or decided["named_correctly"] is None:
        return "–"
    return f"{decided['named_correctly']:.2f} (n = {decided['n']})"


def _face_decisive(summary: dict) -> str:
    """Issue #26's measure: the share of face-carried clips whose answer flips when the frames alone are
    removed (decisive "video"), with the clip count; "–" where no clip is face-carried."""
    face = summary.get("by_true_modality", {}).get("video")
    if not face or "decisive" not in face:
        return "–"
    return f"{face['decisive'].get('video', 0) / face['n']:.2f} (n = {face['n']})"


def _balance_lines(results: dict) -> list[str]:
    """One row per stage: does the model use each stream, and does the face reach the LLM's decision point?"""
    rows = {n: row["balance"] for n, row in results["variants"].items() if "balance" in row}
    if not rows:
        return []

    def cell(value, digits: int = 2) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    first = next(iter(rows.values()))
    changes_n = (first["answer_change"] or {}).get("n", 0)
    norms_n = (first["token_norms"] or {}).get("n", 0)
    lines = ["", f"## Modality balance ({first['split']})", "",
             f"Face-only / voice-only: accuracy on the clips one modality carries. Answer changes: share of "
             f"{changes_n} clips whose answer changes without the frames / the audio ({_removal(results)}). "
             "Token norms: "
             f"mean L2 norm of the video / audio tokens entering the LLM over that of the prompt's text tokens "
             f"({norms_n} clips). Face probe: held-out accuracy of a linear read-out of the face's emotion from "
             "the LLM's last prompt state (majority share in brackets).", "",
             "| stage | face-only | voice-only | answer changes w/o video | w/o audio | video / text norm | "
             "audio / text norm | face probe (chance) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        changes, norms, probe = row["answer_change"] or {}, row["token_norms"] or {}, row["face_probe"] or {}
        lines.append(f"| {_NAMES.get(name, name)} | {cell(row['face_only_accuracy'])} | "
                     f"{cell(row['voice_only_accuracy'])} | {cell(changes.get('no_video'))} | "
                     f"{cell(changes.get('no_audio'))} | {cell(norms.get('video_to_text'), 1)} | "
                     f"{cell(norms.get('audio_to_text'), 1)} | {cell(probe.get('accuracy'))} "
                     f"({cell(probe.get('chance'))}) |")
    return lines
