"""The demo's paired statistics over evaluation folders: per-clip correctness, paired differences with
standard errors, the hallucinated share of cue claims, and accuracy by the modality that carries the label."""

from __future__ import annotations

import json
import math
from pathlib import Path

from r1omni.claims import claim_errors, extract_claims
from r1omni.metrics import PREDICTIONS
from r1omni.schema import Sample

__all__ = ["paired", "pooled", "correct", "war", "hallucinated_share", "by_carrier"]


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean per-clip difference (a − b) on the same clips (correctness, or a share) and its standard error."""
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    if not n:
        return {"diff": 0.0, "se": 0.0, "n": 0}
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return {"diff": mean, "se": math.sqrt(var / n), "n": n}


def pooled(values: list[dict], key: str = "diff") -> dict:
    """Seeds as independent runs: the mean of the per-seed figures under ``key`` (a paired difference, a
    WAR), SE = sqrt(sum se^2) / k, the clips counted over the seeds."""
    k = len(values)
    return {key: sum(v[key] for v in values) / k, "se": math.sqrt(sum(v["se"] ** 2 for v in values)) / k,
            "n": sum(v["n"] for v in values), "seeds": k}


def war(eval_dir: Path) -> dict[str, float]:
    """WAR of one evaluation (the normalized track, from its predictions) with its binomial standard error."""
    right = list(correct(eval_dir).values())
    p = sum(right) / len(right)
    return {"war": p, "se": math.sqrt(p * (1 - p) / len(right)), "n": len(right)}


def correct(eval_dir: Path) -> dict[str, bool]:
    """Clip id -> answered right (the normalized track), from an evaluation's predictions."""
    rows = [json.loads(line) for line in (eval_dir / PREDICTIONS).read_text().splitlines() if line]
    return {r["id"]: r["error"] is None and r["pred"] == r["label"] for r in rows}


def hallucinated_share(eval_dir: Path, cues: dict[str, dict]) -> dict[str, float]:
    """Per clip with known cues and at least one cue claim: the share of its claims the true cues contradict."""
    shares = {}
    for line in (eval_dir / PREDICTIONS).read_text().splitlines():
        row = json.loads(line) if line else {}
        if row.get("think") and row["id"] in cues and (claims := extract_claims(row["think"])):
            shares[row["id"]] = len(claim_errors(row["think"], cues[row["id"]])) / len(claims)
    return shares


def by_carrier(eval_dir: Path, samples: list[Sample]) -> dict[str, float]:
    """Accuracy on the clips each modality mix carries (face only, voice only, both, conflict)."""
    right = correct(eval_dir)
    groups: dict[str, list[bool]] = {}
    for sample in samples:
        if sample.id in right:
            groups.setdefault(sample.meta.get("carrier", "?"), []).append(right[sample.id])
    return {carrier: sum(hits) / len(hits) for carrier, hits in sorted(groups.items())}
