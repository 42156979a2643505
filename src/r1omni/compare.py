"""The paper's Table 1 from evaluation folders: models as rows, datasets x (WAR, UAR) as columns, in %.

Each run (a model) is a folder with one sub-folder per dataset, each holding the ``metrics.json``
that :func:`r1omni.evaluate.evaluate` writes::

    runs/r1omni-grpo/dfew/metrics.json
    runs/r1omni-grpo/mafw/metrics.json
    runs/r1omni-grpo/ravdess/metrics.json

The dataset's name is its sub-folder's name; the run's name is the folder's name, or ``NAME=DIR``
names it explicitly. A folder that itself holds a ``metrics.json`` is a run of one dataset, named by
its ``label_set``. Figures come from one scoring track (``normalized`` by default, ``strict`` is the
R1-Omni-compatible one); with ``fold_mean`` the mean over folds is used where a dataset has several
folds (the specialists' protocol), and such cells are marked. The R1-Omni README's own numbers
(HumanOmni-0.5B, EMER-SFT, MAFW-DFEW-SFT, R1-Omni on DFEW / MAFW / RAVDESS) can be shown beside.

Output: Markdown and a PNG (one panel per dataset, grouped WAR / UAR bars per model, the paper's rows
hatched). This module reads metrics files and draws; it never runs a model or re-scores predictions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from r1omni.metrics import METRICS, TRACKS

__all__ = ["PAPER_TABLE1", "PAPER_DATASETS", "Cell", "Row", "CompareResult", "compare", "compare_runs",
           "parse_run_arg", "find_datasets"]

# R1-Omni paper Table 1 (arXiv:2503.05379) and the HumanMLLM/R1-Omni README (WAR, UAR in %).
PAPER_DATASETS = ("dfew", "mafw", "ravdess")
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "HumanOmni-0.5B": {"dfew": (22.64, 19.44), "mafw": (20.18, 13.52), "ravdess": (7.33, 9.38)},
    "EMER-SFT": {"dfew": (38.66, 35.31), "mafw": (38.39, 28.02), "ravdess": (29.00, 27.19)},
    "MAFW-DFEW-SFT": {"dfew": (60.23, 44.39), "mafw": (50.44, 30.39), "ravdess": (29.33, 30.75)},
    "R1-Omni": {"dfew": (65.83, 56.27), "mafw": (57.68, 40.04), "ravdess": (43.00, 44.69)},
}
_DISPLAY = {"dfew": "DFEW", "mafw": "MAFW", "ravdess": "RAVDESS", "mer2023": "MER2023", "synth": "synth"}


@dataclass
class Cell:
    """One model on one dataset: WAR and UAR in percent."""

    war: float
    uar: float
    n: int | None = None
    """Clips scored (None for the paper's rows)."""
    fold_mean: bool = False
    """True when the figures are the mean over folds."""
    source: str | None = None
    """The metrics file the figures come from."""


@dataclass
class Row:
    name: str
    cells: dict[str, Cell] = field(default_factory=dict)
    paper: bool = False
    """True for the R1-Omni README's reported numbers."""


def display_name(dataset: str) -> str:
    return _DISPLAY.get(dataset.lower(), dataset)


@dataclass
class CompareResult:
    """The table: ``rows`` (models) by ``datasets``; see :attr:`markdown` and :meth:`write_png`."""

    rows: list[Row]
    datasets: list[str]
    track: str

    def to_dict(self) -> dict:
        return {"track": self.track, "datasets": self.datasets,
                "rows": [{"name": r.name, "paper": r.paper,
                          "cells": {d: vars(c) for d, c in r.cells.items()}} for r in self.rows]}

    @property
    def markdown(self) -> str:
        header = ["model"] + [f"{display_name(d)} {m}" for d in self.datasets for m in ("WAR", "UAR")]
        lines = [f"WAR / UAR in %, {self.track} track"
                 + (" (answers mapped through the synonym map)" if self.track == "normalized"
                    else " (exact label words, as the released R1-Omni evaluation)") + ".", "",
                 "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        marked = False
        for row in self.rows:
            values = []
            for dataset in self.datasets:
                cell = row.cells.get(dataset)
                if cell is None:
                    values += ["–", "–"]
                    continue
                mark = "†" if cell.fold_mean else ""
                marked |= cell.fold_mean
                values += [f"{cell.war:.2f}{mark}", f"{cell.uar:.2f}{mark}"]
            name = f"{row.name} (paper)" if row.paper else row.name
            lines.append("| " + " | ".join([name] + values) + " |")
        notes = []
        if marked:
            notes.append("† mean over folds.")
        counted = [f"{row.name}: " + ", ".join(f"{display_name(d)} {row.cells[d].n}" for d in self.datasets
                                               if d in row.cells and row.cells[d].n is not None)
                   for row in self.rows if not row.paper and row.cells]
        if counted:
            notes.append("Clips scored: " + "; ".join(counted) + ".")
        if any(r.paper for r in self.rows):
            notes.append("Paper rows: the R1-Omni README (HumanOmni-0.5B, EMER-SFT, MAFW-DFEW-SFT, R1-Omni); "
                         "their fold, test lists and answer extraction are unpublished.")
        return "\n".join(lines + [f"\n{note}" for note in notes]) + "\n"

    def write_png(self, path: str | os.PathLike, dpi: int = 120) -> Path:
        """One panel per dataset, a group of two bars (WAR, UAR) per model; the paper's rows hatched."""
        from matplotlib.patches import Patch

        from r1omni.plots import figure, save_png

        path = Path(path)
        n_datasets = max(len(self.datasets), 1)
        n_rows = max(len(self.rows), 1)
        panel_width = 1.2 + 0.55 * n_rows
        fig, axes = figure(1, n_datasets, figsize=(panel_width * n_datasets, 3.8), squeeze=False, sharey=True)
        colours = {"WAR": "#3b6fb6", "UAR": "#e08a2c"}
        width = 0.38
        for ax, dataset in zip(axes[0], self.datasets):
            for i, row in enumerate(self.rows):
                cell = row.cells.get(dataset)
                if cell is None:
                    ax.text(i, 1, "n/a", ha="center", va="bottom", fontsize=7, color="grey")
                    continue
                for offset, metric, value in ((-width / 2, "WAR", cell.war), (width / 2, "UAR", cell.uar)):
                    ax.bar(i + offset, value, width, color=colours[metric], alpha=0.45 if row.paper else 1.0,
                           hatch="//" if row.paper else None, edgecolor="white" if not row.paper else "#555555",
                           linewidth=0.5)
                    ax.text(i + offset, value + 0.8, f"{value:.1f}", ha="center", va="bottom", fontsize=6,
                            rotation=90)
            ax.set_xticks(range(len(self.rows)),
                          [f"{r.name}\n(paper)" if r.paper else r.name for r in self.rows],
                          rotation=45, ha="right", fontsize=7)
            ax.set_title(display_name(dataset))
            ax.set_ylim(0, 100)
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel(f"% ({self.track} track)")
        handles = [Patch(color=colours["WAR"], label="WAR"), Patch(color=colours["UAR"], label="UAR")]
        if any(r.paper for r in self.rows):
            handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="//", label="paper"))
        axes[0][-1].legend(handles=handles, fontsize=7, loc="upper right")
        fig.tight_layout()
        return save_png(fig, path, dpi=dpi)


def _read_cell(folder: Path, track: str, fold_mean: bool) -> Cell:
    metrics_path = folder / METRICS
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{metrics_path}: no metrics.json; run `r1omni eval -o` into {folder}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_path}: not valid JSON ({err.msg})") from None
    if track not in metrics:
        raise ValueError(f"{metrics_path}: no {track!r} track; found {sorted(k for k in metrics if k in TRACKS)}")
    figures = metrics[track]
    if fold_mean and "mean_over_folds" in figures:
        mean = figures["mean_over_folds"]
        return Cell(100 * mean["war"], 100 * mean["uar"], figures.get("n"), True, str(metrics_path))
    return Cell(100 * figures["war"], 100 * figures["uar"], figures.get("n"), False, str(metrics_path))


def find_datasets(run_dir: str | os.PathLike) -> dict[str, Path]:
    """``{dataset: folder}`` of a run folder: its sub-folders holding a metrics.json (sorted), or the
    folder itself, named by its label set, when it holds one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a folder")
    if (run_dir / METRICS).is_file():
        try:
            name = json.loads((run_dir / METRICS).read_text(encoding="utf-8")).get("label_set") or run_dir.name
        except json.JSONDecodeError as err:
            raise ValueError(f"{run_dir / METRICS}: not valid JSON ({err.msg})") from None
        return {name: run_dir}
    found = {child.name: child for child in sorted(run_dir.iterdir())
             if child.is_dir() and (child / METRICS).is_file()}
    if not found:
        raise FileNotFoundError(f"{run_dir}: no metrics.json in it or in any sub-folder; expected "
                                f"{run_dir}/<dataset>/metrics.json")
    return found


def parse_run_arg(arg: str) -> tuple[str, Path]:
    """``"NAME=DIR"`` or ``"DIR"`` (the name is the folder's name) -> (name, folder)."""
    name, sep, folder = arg.partition("=")
    if sep and name and folder:
        return name, Path(folder)
    path = Path(arg)
    return (path.resolve().name or arg), path


def _dataset_order(names: list[str]) -> list[str]:
    """The paper's datasets first in its order, then the others as they first appear."""
    seen = list(dict.fromkeys(names))
    return [d for d in PAPER_DATASETS if d in seen] + [d for d in seen if d not in PAPER_DATASETS]


def compare(runs: list[tuple[str, dict[str, str | os.PathLike]]], track: str = "normalized", paper: bool = False,
            fold_mean: bool = False) -> CompareResult:
    """Table from ``[(model name, {dataset: eval folder})]``; ``paper`` adds the README's rows for the
    paper's datasets that appear (all three when no run has any of them)."""
    if track not in TRACKS:
        raise ValueError(f"track must be one of {TRACKS}, got {track!r}")
    names = [name for name, _ in runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"run names must differ; repeated: {repeated} (name them with NAME=DIR)")
    rows = [Row(name, {dataset: _read_cell(Path(folder), track, fold_mean) for dataset, folder in datasets.items()})
            for name, datasets in runs]
    datasets = _dataset_order([d for _, found in runs for d in found])
    if paper:
        shown = [d for d in datasets if d in PAPER_DATASETS] or list(PAPER_DATASETS)
        datasets = _dataset_order(datasets + shown)
        rows += [Row(name, {d: Cell(*figures[d]) for d in shown}, paper=True) for name, figures in PAPER_TABLE1.items()]
    return CompareResult(rows=rows, datasets=datasets, track=track)


def compare_runs(run_dirs: list[str], track: str = "normalized", paper: bool = False,
                 fold_mean: bool = False) -> CompareResult:
    """Table from command-line style arguments: each ``DIR`` or ``NAME=DIR`` is one model (see the
    module docstring for the folder layout)."""
    if not run_dirs and not paper:
        raise ValueError("nothing to compare: give at least one run folder (or paper=True)")
    runs = []
    for arg in run_dirs:
        name, folder = parse_run_arg(arg)
        runs.append((name, find_datasets(folder)))
    return compare(runs, track=track, paper=paper, fold_mean=fold_mean)
