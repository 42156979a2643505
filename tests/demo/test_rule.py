"""The pre-registered decision rule (``r1omni.demo.rule``): every branch, on differences made by hand."""

from __future__ import annotations

import math

import pytest

from r1omni.demo.rule import BETTER, UNRESOLVED, WORSE, compare_over_seeds, verdict


def seeds(*pairs):
    return [{"diff": d, "se": se} for d, se in pairs]


def test_a_difference_beyond_two_standard_errors_in_most_seeds_is_better():
    got = compare_over_seeds(seeds((0.05, 0.02), (0.04, 0.02), (0.06, 0.02)))
    assert got.outcome == BETTER
    assert got.diff == pytest.approx(0.05) and got.se == pytest.approx(math.sqrt(3 * 0.02 ** 2) / 3)
    assert compare_over_seeds(seeds((-0.05, 0.02), (-0.04, 0.02), (-0.06, 0.02))).outcome == WORSE


def test_one_large_seed_does_not_carry_the_verdict():
    # mean +0.05 well beyond 2 SE, but only one seed of three is positive
    got = compare_over_seeds(seeds((0.17, 0.01), (-0.01, 0.01), (-0.01, 0.01)))
    assert got.diff > 2 * got.se and got.outcome == UNRESOLVED


def test_within_two_standard_errors_is_unresolved_with_its_interval():
    got = compare_over_seeds(seeds((0.03, 0.03), (0.02, 0.03), (0.04, 0.03)))
    assert got.outcome == UNRESOLVED
    low, high = got.interval
    assert low < 0 < high and high - low == pytest.approx(4 * got.se)


def test_the_verdict_follows_h1_and_h2():
    better = compare_over_seeds(seeds((0.05, 0.01), (0.05, 0.01), (0.05, 0.01)))
    level = compare_over_seeds(seeds((0.0, 0.01), (0.01, 0.01), (-0.01, 0.01)))
    worse = compare_over_seeds(seeds((-0.05, 0.01), (-0.05, 0.01), (-0.05, 0.01)))
    assert verdict(better, better, True).startswith("RLVR's out-of-distribution edge is real")
    assert verdict(better, level, True).startswith("The edge is RL's data filtering")
    assert verdict(worse, level, True).startswith("Label SFT is better")
    assert verdict(level, level, True).startswith("No RLVR edge") and "interval" in verdict(level, level, True)
    assert "precondition failed" in verdict(better, better, False)


def test_the_rule_needs_a_seed():
    with pytest.raises(ValueError, match="at least one seed"):
        compare_over_seeds([])
