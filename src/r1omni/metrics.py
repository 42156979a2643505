"""Classification metrics of emotion recognition over an explicit label list.

* WAR (weighted average recall) = accuracy = sum_c (n_c / N) * recall_c.
* UAR (unweighted average recall) = mean of per-class recall over the classes given (classes with
  no true sample are left out of the mean, as ``recall_score(labels=unique(y_true))`` does in the
  released evaluation; pass the dataset's label list and they are listed with recall None).
* A prediction of None (an unparseable or out-of-set answer) is always wrong and is counted, never
  turned into a class.

Fractions in [0, 1]. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["war", "uar", "per_class_recall", "confusion_matrix", "ClassificationReport", "classification_report",
           "mean_over_folds", "TRACKS", "PREDICTIONS", "METRICS"]

# The two scoring tracks and the files of an evaluation folder, named once for evaluate, compare and the demo.
TRACKS = ("strict", "normalized")
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"


def _check(y_true: Sequence[str], y_pred: Sequence[str | None]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} entries but y_pred has {len(y_pred)}")
    if any(label is None for label in y_true):
        raise ValueError("y_true contains None: every evaluated sample needs a label")


def war(y_true: Sequence[str], y_pred: Sequence[str | None]) -> float:
    """Accuracy; an empty input is 0.0.

    >>> war(["a", "b", "b"], ["a", None, "b"])
    0.6666666666666666
    """
    _check(y_true, y_pred)
    if not y_true:
        return 0.0
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def per_class_recall(y_true: Sequence[str], y_pred: Sequence[str | None],
                     labels: Sequence[str]) -> dict[str, float | None]:
    """Recall of each label; None for a label with no true sample."""
    _check(y_true, y_pred)
    unknown = sorted(set(y_true) - set(labels))
    if unknown:
        raise ValueError(f"true labels {unknown} are not in the label list {list(labels)}")
    recall: dict[str, float | None] = {}
    for label in labels:
        hits = [p == label for t, p in zip(y_true, y_pred) if t == label]
        recall[label] = sum(hits) / len(hits) if hits else None
    return recall


def uar(y_true: Sequence[str], y_pred: Sequence[str | None], labels: Sequence[str]) -> float:
    """Mean per-class recall over the labels that occur in ``y_true``.

    >>> uar(["a", "a", "a", "b"], ["a", "a", "a", "a"], ["a", "b"])
    0.5
    """
    values = [r for r in per_class_recall(y_true, y_pred, labels).values() if r is not None]
    return float(np.mean(values)) if values else 0.0


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str | None], labels: Sequence[str]) -> list[list[int]]:
    """Rows = true label, columns = predicted label, plus a last column for unparseable predictions
    (None or a word outside ``labels``)."""
    _check(y_true, y_pred)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        matrix[index[t], index.get(p, len(labels)) if p is not None else len(labels)] += 1
    return matrix.tolist()


@dataclass
class ClassificationReport:
    """Every figure of one scoring track on one set of predictions."""

    war: float
    uar: float
    per_class_recall: dict[str, float | None]
    confusion: list[list[int]]      # (L, L+1): last column = unparseable / out-of-set
    labels: list[str]
    unparseable: int
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def classification_report(y_true: Sequence[str], y_pred: Sequence[str | None],
                          labels: Sequence[str]) -> ClassificationReport:
    labels = list(labels)
    return ClassificationReport(
        war=war(y_true, y_pred),
        uar=uar(y_true, y_pred, labels),
        per_class_recall=per_class_recall(y_true, y_pred, labels),
        confusion=confusion_matrix(y_true, y_pred, labels),
        labels=labels,
        unparseable=sum(p is None or p not in labels for p in y_pred),
        n=len(y_true),
    )


def mean_over_folds(reports: Sequence[ClassificationReport]) -> dict[str, float]:
    """Arithmetic mean of per-fold WAR and UAR (the specialists' protocol), with their spread."""
    if not reports:
        raise ValueError("mean_over_folds needs at least one fold")
    wars = np.array([r.war for r in reports])
    uars = np.array([r.uar for r in reports])
    return {"war": float(wars.mean()), "uar": float(uars.mean()), "war_std": float(wars.std()),
            "uar_std": float(uars.std()), "folds": len(reports)}
