"""The decision rule of the pre-registered RLVR-vs-SFT study (``docs/study-rlvr-vs-sft.md``), as code.

Written down before the study's numbers exist, so the verdict is whatever the rule gives: two arms compared
on the same clips in each seed (:func:`r1omni.demo.stats.paired`), combined over the seeds as independent
runs, and called different only when the combined difference clears two standard errors *and* most seeds
point the same way. Nothing here reads files or trains; the study feeds it per-seed paired differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Comparison", "compare_over_seeds", "verdict", "PRECONDITION_HEADROOM", "BETTER", "WORSE",
           "UNRESOLVED"]

BETTER, WORSE, UNRESOLVED = "better", "worse", "no difference resolved"

PRECONDITION_HEADROOM = 0.10
"""Property (a): the cold start's pass@k − pass@1 on the shifted validation split, in every seed, at least."""


@dataclass(frozen=True)
class Comparison:
    """Arm X against arm Y over the seeds: the mean per-seed difference (X − Y), its standard error
    √(Σ se_s²) / n, the per-seed differences, and the outcome (:data:`BETTER`: X better, :data:`WORSE`: Y
    better, :data:`UNRESOLVED`)."""

    diff: float
    se: float
    per_seed: tuple[float, ...]
    outcome: str

    @property
    def interval(self) -> tuple[float, float]:
        """diff ± 2 SE, what an unresolved comparison is reported with."""
        return self.diff - 2 * self.se, self.diff + 2 * self.se


def compare_over_seeds(per_seed: list[dict]) -> Comparison:
    """The rule on per-seed paired differences (``{"diff", "se"}`` each, from :func:`~r1omni.demo.stats.paired`):
    X better when diff > 2 SE and the difference is positive in most seeds (two of three), Y better in the
    mirror case, otherwise unresolved."""
    if not per_seed:
        raise ValueError("the rule needs at least one seed's paired difference")
    diffs = tuple(float(s["diff"]) for s in per_seed)
    n = len(diffs)
    diff = sum(diffs) / n
    se = math.sqrt(sum(float(s["se"]) ** 2 for s in per_seed)) / n
    most = n // 2 + 1
    if diff > 2 * se and sum(d > 0 for d in diffs) >= most:
        outcome = BETTER
    elif diff < -2 * se and sum(d < 0 for d in diffs) >= most:
        outcome = WORSE
    else:
        outcome = UNRESOLVED
    return Comparison(diff, se, diffs, outcome)


def verdict(h1: Comparison, h2: Comparison, precondition_met: bool) -> str:
    """The plain-language verdict from H1 (RLVR against label SFT) and H2 (RLVR against DC-SFT), in the
    pre-registration's words; H3 and H4 qualify it where it is reported, they do not change it."""
    if h1.outcome == BETTER:
        text = ("RLVR's out-of-distribution edge is real on this miniature: RLVR beats label SFT and "
                "difficulty-curated SFT." if h2.outcome == BETTER else
                "The edge is RL's data filtering: RLVR beats label SFT, but difficulty-curated SFT is level with "
                "or ahead of it.")
    elif h1.outcome == WORSE:
        text = "Label SFT is better than RLVR out of distribution on this miniature."
    else:
        low, high = h1.interval
        text = (f"No RLVR edge on this miniature: RLVR − label SFT out of distribution is {h1.diff:+.3f} "
                f"(interval {low:+.3f} to {high:+.3f}), not resolved by the rule.")
    if not precondition_met:
        text += (" The precondition failed: the cold start had too little room on the shifted split "
                 f"(pass@k − pass@1 below {PRECONDITION_HEADROOM:.2f} in some seed), so RL had little to sharpen.")
    return text
