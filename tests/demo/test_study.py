"""`r1omni demo --study budget --quick` end to end (r1omni.demo.study): both methods saved and evaluated at
every budget for every seed, the pooled table, the plot and the one-sentence answers; and the
verdict's arithmetic on hand-made curves."""

import json
import subprocess
import sys

import pytest

from r1omni.demo.stats import pooled
from r1omni.demo.study import StudyConfig, _verdict

pytestmark = pytest.mark.slow


def test_quick_study_writes_the_curve_and_answers_per_split(tmp_path):
    out = tmp_path / "study"
    done = subprocess.run([sys.executable, "-m", "r1omni", "demo", "--study", "budget", "--quick", "-o", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    config = StudyConfig.quick()
    assert summary["seeds"] == [0, 1] and summary["budgets"] == list(config.budgets)
    for key in ("id", "ood"):
        rows = summary["splits"][key]
        for method in ("label_sft", "rlvr", "rlvr_minus_label_sft"):
            assert len(rows[method]) == len(config.budgets)
            assert all(point["se"] >= 0 and point["seeds"] == 2 for point in rows[method])
        assert all(0 <= point["war"] <= 1 for point in rows["rlvr"] + rows["label_sft"])
        assert rows["answer"].startswith("RLVR ") and rows["answer"] in (out / "summary.md").read_text()
        assert f"{key.upper()}: RLVR" in done.stdout
    for seed in (0, 1):
        for method, per_step in (("label_sft", 8), ("rlvr", 16)):
            snapshots = sorted(p.name for p in (out / f"seed-{seed}" / "study" / method / "snapshots").iterdir())
            assert snapshots == [f"step-{budget // per_step:07d}" for budget in config.budgets]
    assert (out / "budget.png").stat().st_size > 1000


def test_the_verdict_reads_the_paired_differences_against_two_standard_errors():
    budgets = (100, 200, 400)
    trails = [{"diff": -0.2, "se": 0.02}] * 3
    assert _verdict(trails, budgets).startswith("RLVR does not match label SFT at any budget up to 400")
    rising = [{"diff": -0.2, "se": 0.02}, {"diff": -0.01, "se": 0.02}, {"diff": 0.1, "se": 0.02}]
    sentence = _verdict(rising, budgets)
    assert sentence.startswith("RLVR first matches or beats label SFT at 200 clip-views")
    assert "matches at 200" in sentence and "beats at 400" in sentence
    falling = [{"diff": 0.01, "se": 0.01}, {"diff": -0.01, "se": 0.03}, {"diff": -0.1, "se": 0.03}]
    sentence = _verdict(falling, budgets)
    assert sentence.startswith("RLVR matches or beats label SFT from 100 clip-views but trails it again from 400")
    assert "trails at 400 (-0.100 ± 0.030)" in sentence
    together = pooled([{"diff": 0.1, "se": 0.03, "n": 10}, {"diff": 0.3, "se": 0.04, "n": 10}])
    assert together == {"diff": pytest.approx(0.2), "se": pytest.approx(0.025), "n": 20, "seeds": 2}
    assert pooled([{"war": 0.5, "se": 0.1, "n": 4}], "war") == {"war": 0.5, "se": 0.1, "n": 4, "seeds": 1}
    with pytest.raises(ValueError, match="multiple of"):
        StudyConfig(budgets=(100, 200))
