"""The Table 1 comparison from evaluation folders (metrics.json written by ``score_predictions``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1omni.compare import PAPER_TABLE1, compare, compare_runs, find_datasets, parse_run_arg
from r1omni.evaluate import score_predictions
from r1omni.labels import DFEW, MAFW


def write_metrics(folder, label_set, outcomes):
    """``outcomes``: (label, normalized pred, strict pred, fold) per clip."""
    rows = [{"id": f"c{i}", "label": label, "pred": pred, "pred_strict": strict, "format_ok": True, "think": None,
             "fold": fold, "error": None, "output": "", "answer": ""}
            for i, (label, pred, strict, fold) in enumerate(outcomes)]
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(score_predictions(rows, label_set)))


@pytest.fixture
def runs(tmp_path):
    # run "base": DFEW 1/4 right (normalized), 0/4 strict; MAFW 1/2.
    write_metrics(tmp_path / "base" / "dfew", DFEW, [("happy", "happy", None, None), ("sad", None, None, None),
                                                     ("sad", "happy", "happy", None), ("fear", "sad", "sad", None)])
    write_metrics(tmp_path / "base" / "mafw", MAFW, [("anxious", "anxious", "anxious", None),
                                                     ("helpless", "sad", "sad", None)])
    # run "grpo": DFEW only, over two folds (fold 1 all right, fold 2 half right).
    write_metrics(tmp_path / "grpo" / "dfew", DFEW, [("happy", "happy", "happy", 1), ("sad", "sad", None, 1),
                                                     ("sad", "sad", "sad", 2), ("fear", None, None, 2)])
    return tmp_path


def test_table_from_two_runs(runs):
    result = compare_runs([str(runs / "base"), f"GRPO model={runs / 'grpo'}"])
    assert result.datasets == ["dfew", "mafw"] and result.track == "normalized"
    assert [r.name for r in result.rows] == ["base", "GRPO model"]
    base, grpo = result.rows
    assert base.cells["dfew"].war == pytest.approx(25.0)
    assert base.cells["dfew"].uar == pytest.approx(100 / 3)  # happy 1, sad 0, fear 0
    assert base.cells["mafw"].war == pytest.approx(50.0) and base.cells["dfew"].n == 4
    assert grpo.cells["dfew"].war == pytest.approx(75.0) and "mafw" not in grpo.cells
    lines = result.markdown.splitlines()
    assert "| model | DFEW WAR | DFEW UAR | MAFW WAR | MAFW UAR |" in lines
    assert "| base | 25.00 | 33.33 | 50.00 | 50.00 |" in lines
    assert "| GRPO model | 75.00 | 66.67 | – | – |" in lines
    assert "normalized track" in lines[0]


def test_strict_track_and_fold_mean(runs):
    strict = compare_runs([str(runs / "base"), str(runs / "grpo")], track="strict")
    assert strict.rows[0].cells["dfew"].war == 0.0
    assert strict.rows[1].cells["dfew"].war == pytest.approx(50.0)
    assert "strict track" in strict.markdown
    folds = compare_runs([str(runs / "grpo")], fold_mean=True)
    cell = folds.rows[0].cells["dfew"]
    assert cell.fold_mean and cell.war == pytest.approx(75.0)   # (100 + 50) / 2
    assert cell.uar == pytest.approx((100 + 50) / 2)            # fold 1: 1, 1; fold 2: sad 1, fear 0
    assert "75.00†" in folds.markdown and "† mean over folds." in folds.markdown
    # Without fold_mean the pooled figures are used and nothing is marked.
    assert "†" not in compare_runs([str(runs / "grpo")]).markdown


def test_paper_rows(runs):
    result = compare_runs([str(runs / "base")], paper=True)
    assert result.datasets == ["dfew", "mafw"]  # only the paper datasets the runs have
    assert [r.name for r in result.rows] == ["base", *PAPER_TABLE1]
    r1 = result.rows[-1]
    assert r1.paper and r1.cells["dfew"].war == 65.83 and "ravdess" not in r1.cells
    assert "| R1-Omni (paper) | 65.83 | 56.27 | 57.68 | 40.04 |" in result.markdown
    only_paper = compare_runs([], paper=True)
    assert only_paper.datasets == ["dfew", "mafw", "ravdess"]
    assert "| HumanOmni-0.5B (paper) | 22.64 | 19.44 | 20.18 | 13.52 | 7.33 | 9.38 |" in only_paper.markdown


def test_png(runs, tmp_path):
    result = compare_runs([str(runs / "base"), str(runs / "grpo")], paper=True)
    path = result.write_png(tmp_path / "out" / "table1.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(json.dumps(result.to_dict()))["rows"][0]["cells"]["dfew"]["war"] == pytest.approx(25.0)


def test_folder_layouts_and_names(runs):
    # A folder holding metrics.json itself is one dataset named by its label set.
    assert find_datasets(runs / "base" / "mafw") == {"mafw": runs / "base" / "mafw"}
    assert parse_run_arg("a=b/c") == ("a", Path("b/c"))
    assert parse_run_arg(str(runs / "grpo"))[0] == "grpo"
    result = compare([("x", {"ravdess-like": runs / "base" / "dfew"})])
    assert result.datasets == ["ravdess-like"]


def test_errors_name_the_problem(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        compare_runs([str(runs)])  # the runs' parent: metrics two levels down
    with pytest.raises(ValueError, match="repeated"):
        compare_runs([f"a={runs / 'base'}", f"a={runs / 'grpo'}"])
    with pytest.raises(ValueError, match="track"):
        compare_runs([str(runs / "base")], track="loose")
    broken = tmp_path / "broken" / "dfew"
    broken.mkdir(parents=True)
    (broken / "metrics.json").write_text('{"strict": {}}')
    with pytest.raises(ValueError, match="no 'normalized' track"):
        compare_runs([str(tmp_path / "broken")])
    with pytest.raises(ValueError, match="nothing to compare"):
        compare_runs([])
