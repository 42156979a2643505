"""`r1omni demo --study rl-vs-sft --quick` end to end (r1omni.demo.rl_vs_sft): the four arms of the
pre-registered study trained, validated, chosen and tested, in the pre-registration's order, and the verdict
the rule gives on the written evaluations; not the study's result (the quick budgets are tiny)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1omni.demo.rl_vs_sft import ARMS, HYPOTHESES, SHIFTED, RlVsSftConfig
from r1omni.demo.rl_vs_sft_report import write_report
from r1omni.demo.rule import PRECONDITION_HEADROOM, compare_over_seeds, verdict
from r1omni.demo.stats import correct, paired
from r1omni.synth.config import TEST_SPLITS, VALIDATION_SPLITS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rl_vs_sft") / "out"
    done = subprocess.run([sys.executable, "-m", "r1omni", "demo", "--study", "rl-vs-sft", "--quick", "-o", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verdict:" in done.stdout
    return out, json.loads((out / "results.json").read_text())


def test_every_arm_and_seed_reports_the_preregistered_metrics(study):
    out, results = study
    assert [r["seed"] for r in results["seeds"]] == list(RlVsSftConfig.quick().seeds)
    for record in results["seeds"]:
        assert set(record["test"]) == set(ARMS)
        for arm in ARMS:
            for which in ("final", "matched"):
                row = record["test"][arm][which]
                for split in TEST_SPLITS:
                    figures = row["splits"][split]
                    assert 0 <= figures["pass_at_1"] <= figures["pass_at_k"] <= 1 and 0 <= figures["war"] <= 1
                    assert figures["by_carrier"]
                assert row["kl_to_start"]["completions"] > 0 and row["kl_to_base"]["completions"] > 0
            assert len(record["models"][arm]) >= 2                # snapshots along the budget, then the final
        starting = record["starting_points"]                      # reported beside the arms, not compared
        assert set(starting) == {"base", "cold_start"} and starting["base"]["kl_to_start"]["per_completion"] == 0
        assert starting["cold_start"]["kl_to_start"]["completions"] > 0
        assert all(set(row["splits"]) == set(TEST_SPLITS) for row in starting.values())
        dc = record["dc_sft"]                                     # the selection is counted, a fallback said
        assert dc["fallback_to_all"] == (dc["medium"] == 0) and dc["clips"] > 0
    assert (out / "ood_vs_id.png").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "Verdict:" in summary and "ID UAR" in summary and "OOD pass@k" in summary and "MIX conflict" in summary
    for record in results["seeds"]:
        assert f"## Seed {record['seed']}" in summary
    for arm in ARMS:
        assert f"| {arm} (final) |" in summary and f"| {arm} (matched) |" in summary
    assert "| base (start) |" in summary and "| cold start (start) |" in summary


def test_the_report_is_written_again_from_results_json_alone(study, tmp_path):
    out, _ = study
    copy = tmp_path / "report"
    copy.mkdir()
    (copy / "results.json").write_bytes((out / "results.json").read_bytes())
    write_report(copy)
    assert (copy / "summary.md").read_text() == (out / "summary.md").read_text()
    assert (copy / "ood_vs_id.png").stat().st_size > 1000


def test_the_verdict_is_the_rules_on_the_written_evaluations(study):
    _, results = study

    def on_shifted(x_row, y_row):
        a, b = {}, {}
        for split in SHIFTED:
            a.update({(split, k): v for k, v in correct(Path(x_row["splits"][split]["folder"])).items()})
            b.update({(split, k): v for k, v in correct(Path(y_row["splits"][split]["folder"])).items()})
        return paired([a[i] for i in sorted(a)], [b[i] for i in sorted(a)])

    found = {}
    for name, x, y, which in HYPOTHESES:
        found[name] = compare_over_seeds([on_shifted(r["test"][x][which], r["test"][y][which])
                                          for r in results["seeds"]])
        assert results["hypotheses"][name]["shifted"]["outcome"] == found[name].outcome
        assert results["hypotheses"][name]["shifted"]["diff"] == pytest.approx(found[name].diff)
    met = all(r["headroom"]["pass_at_k"] - r["headroom"]["pass_at_1"] >= PRECONDITION_HEADROOM
              for r in results["seeds"])
    assert results["precondition_met"] == met
    assert results["verdict"] == verdict(found["H1"], found["H2"], met)


def test_the_test_splits_are_read_after_validation_and_for_the_chosen_models_only(study):
    out, results = study
    for record in results["seeds"]:
        evals = out / f"seed-{record['seed']}" / "evals"
        validation = [p for s in VALIDATION_SPLITS for p in evals.glob(f"*/{s}/metrics.json")]
        tests = [p for s in TEST_SPLITS for p in evals.glob(f"*/{s}/metrics.json")]
        assert len(validation) == 2 * sum(len(chain) for chain in record["models"].values())
        assert max(p.stat().st_mtime for p in validation) <= min(p.stat().st_mtime for p in tests)
        chosen = {Path(row["model"]) for arm in ARMS for row in record["test"][arm].values()}
        chosen |= {Path(row["model"]) for row in record["starting_points"].values()}   # base, cold start
        assert len(tests) == len(TEST_SPLITS) * len(chosen)
        matched = record["validation"]["matched"]
        target = record["validation"]["target"]
        for arm in ARMS:
            wars = [w["val_id"] for w in record["validation"]["war"][arm]]
            assert wars[matched[arm]] >= target and all(w < target for w in wars[:matched[arm]])


def test_a_rerun_reuses_every_run_evaluation_and_test_measurement(study):
    out, results = study
    kept = sorted(out.glob("seed-*/evals/*/test_measures.json"))      # written only when measured
    trained = sorted(out.glob("seed-*/runs/*/result.json"))             # written only when trained
    before = {p: p.stat().st_mtime_ns for p in [*kept, *trained]}
    scored = {p: p.stat().st_mtime_ns for p in out.glob("seed-*/evals/*/*/metrics.json")}
    assert kept and trained
    done = subprocess.run([sys.executable, "-m", "r1omni", "demo", "--study", "rl-vs-sft", "--quick", "-o", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "results.json").read_text()) == results
    assert {p: p.stat().st_mtime_ns for p in before} == before      # nothing trained or sampled again
    rescored = [json.loads(p.read_text()) for p, mtime in scored.items() if p.stat().st_mtime_ns != mtime]
    assert rescored and all(m["clips_per_second"] is None for m in rescored)   # re-scored, no clip answered again


def test_the_preregistration_is_in_the_repository():
    text = (REPO / "docs" / "study-rlvr-vs-sft.md").read_text()
    assert "Decision rule" in text and "rl-vs-sft" in text
