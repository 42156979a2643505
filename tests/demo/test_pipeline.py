"""`r1omni demo --quick` end to end (r1omni.demo.pipeline and .report): what it writes, that a re-run reuses it,
that the same seed gives the same numbers whatever the thread variables and the CPU's vector width, and
that they are the committed ones (``quick-seed0.json``); not its accuracy."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1omni.demo.reuse import STAGES
from r1omni.environment import isa_level, pins_digest

pytestmark = pytest.mark.slow

COMMITTED = Path(__file__).with_name("quick-seed0.json")
# An AVX2 machine's libraries, capped from outside (as tests/synth/test_benchmark_hashes.py does).
AVX2_MACHINE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell", "OPENCV_CPU_DISABLE": "AVX512-SKX",
                "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
# The command line with r1omni's own cap switched off, FFmpeg capped as an AVX2 machine's would be.
UNPINNED_DEMO = """
import ctypes, sys
import r1omni.environment as environment
avutil = environment._libavutil()
if avutil is not None and environment.isa_level() in ("x86-64-v3", "x86-64-v4"):
    avutil.av_force_cpu_flags(ctypes.c_int(avutil.av_get_cpu_flags() & ~0x300000))
environment.pin_isa = lambda: {}
from r1omni.cli import main
sys.exit(main(sys.argv[1:]))
"""

VARIANTS = ("base", "cold_start_sft", "label_sft", "rlvr", "rlvr_grounding")


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    completed = subprocess.run([sys.executable, "-m", "r1omni.cli", "demo", "--quick", "-o", str(out)],
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out, completed.stdout


SPLITS = ("id", "ood", "mix")


def test_results_json_has_the_promised_shape(quick_demo):
    out, _ = quick_demo
    results = json.loads((out / "results.json").read_text())
    assert results["eval_splits"] == ["test_id", "test_ood", "test_mix"]
    for name in VARIANTS:
        row = results["variants"][name]
        assert isinstance(row["clip_views"], int) and row["clip_views"] > 0
        assert row["budget"]["wall_seconds"] > 0
        for split in SPLITS:
            for key in ("war", "uar", "format_rate"):
                assert 0.0 <= row[split][key] <= 1.0
            assert row[split]["n"] > 0
            assert set(row[split]["by_carrier"]) <= {"face", "voice", "both", "conflict"}
        balance = row["balance"]   # issue #26's diagnosis, every stage on the in-distribution split
        assert balance["split"] == "id" and balance["face_only_accuracy"] == row["id"]["by_carrier"]["face"]
        assert balance["answer_change"]["n"] == 14
        assert balance["answer_change"]["source"] == ("decoded" if name == "base" else "attribution")
        assert balance["token_norms"]["n"] == 70 and balance["token_norms"]["video_to_text"] > 0
        assert 0.0 <= balance["face_probe"]["accuracy"] <= 1.0
    # Budgets matched: GRPO sees at least the label-SFT baseline's clip-views, and reports what it generated.
    variants = results["variants"]
    for name in ("rlvr", "rlvr_grounding"):
        assert variants[name]["budget"]["generated_tokens"] > 0
    assert variants["label_sft"]["budget"]["generated_tokens"] == 0
    pairs = [results["paired"][name] for name in ("rlvr_vs_cold_start_sft", "rlvr_vs_label_sft",
                                                  "rlvr_grounding_vs_rlvr")]
    for by_split in pairs + [results["paired_hallucination"]]:
        for split in SPLITS:
            assert -1.0 <= by_split[split]["diff"] <= 1.0 and by_split[split]["se"] >= 0.0
    assert results["wall_seconds"] > 0
    assert results["config"]["synth_preset"] == "quick"


def test_report_folder_and_printed_table(quick_demo):
    out, stdout = quick_demo
    report = (out / "report.md").read_text()
    for plot in ("table.png", "per_class_recall.png", "grpo_curves.png", "confusion_rlvr_id.png",
                 "confusion_rlvr_mix.png"):
        assert (out / "plots" / plot).stat().st_size > 1000, plot
        assert f"plots/{plot}" in report
    assert "Example outputs" in report and "paired difference" in report and "RLVR + grounding" in report
    assert "## Modality balance (id)" in report and "video / text norm" in report
    for column in ("voice-only clips: cites voice", "cue claims per answer", "hallucinated cue claims",
                   "subtitle quoted right", "generated tokens", "MIX WAR", "ID face", "OOD voice"):
        assert column in report, column
    assert "paired rlvr_vs_cold_start_sft" in stdout and "rlvr" in stdout


def _numbers(value):
    """A result as canonical JSON without its timings (wall seconds differ from run to run)."""
    def strip(item):
        if isinstance(item, dict):
            return {k: strip(v) for k, v in item.items() if k != "wall_seconds"}
        return [strip(v) for v in item] if isinstance(item, list) else item
    return json.dumps(strip(value), sort_keys=True)


def _record(out) -> dict:
    """What the committed record holds: the numbers (no timings) and the weights' digests."""
    results = json.loads((out / "results.json").read_text())
    record = {key: json.loads(_numbers(results[key])) for key in ("variants", "paired", "paired_hallucination")}
    record["weights_sha256"] = _digests(out)
    return record


def _skip_below_the_cap(out) -> None:
    """The committed numbers are those of torch's AVX2 kernels (and the other libraries' x86-64-v3 ones);
    a machine below that level, or a caller emulating one, computes others, rightly."""
    isa = json.loads((out / "results.json").read_text())["environment"]["isa"]
    if isa_level() not in ("x86-64-v3", "x86-64-v4") or isa["torch_cpu_capability"] != "AVX2":
        pytest.skip(f"x86-64-v3 numbers; this run had {isa_level()} with torch's {isa['torch_cpu_capability']} "
                    "kernels (an older CPU, or a caller emulating one)")


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}")
    return f"{path}: committed {a!r}, measured {b!r}"


def _lock_digest() -> str:
    lock = Path(__file__).parents[2] / "requirements.lock"
    return pins_digest(line for line in lock.read_text().splitlines() if not line.startswith("#"))


def _digests(out):
    """sha256 of every saved model's weights, by path relative to the run folder."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("runs/*/final/*.safetensors"))}


def test_the_same_seed_gives_the_same_numbers_whatever_the_thread_variables_and_the_vector_width(quick_demo,
                                                                                                 tmp_path):
    """The second run plays an AVX2 machine that does not pin anything (its libraries capped from outside,
    r1omni's own cap switched off) with other thread variables: it must compute what this machine
    computes with the cap. On an AVX2 machine the emulation changes nothing and the test still holds."""
    out, _ = quick_demo  # made under the suite's OMP_NUM_THREADS=1
    _skip_below_the_cap(out)
    again = tmp_path / "again"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", **AVX2_MACHINE}
    completed = subprocess.run([sys.executable, "-c", UNPINNED_DEMO, "demo", "--quick", "-o", str(again)],
                               capture_output=True, text=True, timeout=900, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = (json.loads((d / "results.json").read_text()) for d in (out, again))
    assert second["environment"]["thread_variables"]["OMP_NUM_THREADS"] == "2"   # the caller's, recorded
    assert first["environment"]["isa"]["pinned"] in ("x86-64-v3", None)
    assert second["environment"]["isa"]["pinned"] is None and second["environment"]["isa"]["torch_cpu_capability"] \
        in ("AVX2", "DEFAULT")
    assert first["environment"]["pinned_thread_variables"] == second["environment"]["pinned_thread_variables"]
    assert first["environment"]["torch_threads"] == second["environment"]["torch_threads"]
    for key in ("variants", "paired", "paired_hallucination"):
        assert _numbers(first[key]) == _numbers(second[key]), key
    runs = {path.split("/")[1] for path in _digests(out)}
    assert _digests(out) == _digests(again) and runs == {"towers", "perception", *VARIANTS}
    for split in ("id", "ood"):
        assert ((out / "eval" / "rlvr" / split / "predictions.jsonl").read_text()
                == (again / "eval" / "rlvr" / split / "predictions.jsonl").read_text())


def test_the_quick_demo_gives_the_committed_numbers(quick_demo):
    """Every number and every saved weight of ``demo --quick`` (seed 0) equals the committed record: on any
    machine of x86-64-v3 or above, with the locked packages. A change meant to move them rewrites the
    record: ``python tests/demo/test_pipeline.py OUT`` with OUT a fresh ``demo --quick`` folder."""
    out, _ = quick_demo
    _skip_below_the_cap(out)
    results = json.loads((out / "results.json").read_text())
    if results["environment"]["installed_digest"] != _lock_digest():
        pytest.skip("the installed packages are not the lock's (make test-latest): other numbers may be right")
    committed = json.loads(COMMITTED.read_text())
    measured = _record(out)
    differ = [key for key in committed if committed[key] != measured.get(key)]
    assert not differ, (f"demo --quick differs from {COMMITTED.name} in {differ}; first difference: "
                        f"{_first_difference(committed[differ[0]], measured.get(differ[0]))}")


def test_results_record_the_environment(quick_demo):
    out, _ = quick_demo
    env = json.loads((out / "results.json").read_text())["environment"]
    for key in ("python", "torch", "transformers", "accelerate", "av", "numpy", "torch_threads", "cpu_model"):
        assert env[key], key
    assert env["torch_threads"] == 2  # the demo's own setting wins over the suite's OMP_NUM_THREADS=1


def test_a_second_run_reuses_finished_stages(quick_demo):
    out, _ = quick_demo
    completed = subprocess.run([sys.executable, "-m", "r1omni.cli", "demo", "--quick", "-o", str(out)],
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Every training stage: the base's tower and perception phases, the base and the four trained rows.
    assert completed.stdout.count("reusing") == 2 + len(VARIANTS)


def _made(folder: Path) -> None:
    """A finished run's folders, as the demo leaves them (contents do not matter here)."""
    for name in ("models/init", "eval", *(f"runs/{stage}" for stage in STAGES)):
        (folder / name).mkdir(parents=True, exist_ok=True)


def _left(folder: Path) -> set[str]:
    return {path.name for path in (folder / "runs").iterdir()} if (folder / "runs").exists() else set()


def test_a_changed_setting_retrains_its_stage_and_those_after_it_only(tmp_path):
    from dataclasses import replace

    from r1omni.demo.config import DemoConfig
    from r1omni.demo.reuse import forget_stale_results

    bench = tmp_path / "benchmark"
    bench.mkdir()
    (bench / "synth_config.json").write_text(json.dumps({"seed": 0}))
    said = []
    config = DemoConfig.quick(output_dir=str(tmp_path))
    forget_stale_results(tmp_path, config, bench, said.append)
    _made(tmp_path)
    forget_stale_results(tmp_path, config, bench, said.append)
    assert _left(tmp_path) == set(STAGES) and (tmp_path / "eval").is_dir() and not said    # the same settings
    # GRPO's β: both GRPO rows retrained, everything they start from kept; every result measured again.
    config = replace(config, grpo_beta=config.grpo_beta / 2)
    forget_stale_results(tmp_path, config, bench, said.append)
    assert _left(tmp_path) == set(STAGES) - {"rlvr", "rlvr_grounding"} and not (tmp_path / "eval").exists()
    assert "rlvr, rlvr_grounding retrained" in said[-1]
    # The cold start: it and the two GRPO rows that start from it; label SFT starts from the base and stays.
    _made(tmp_path)
    config = replace(config, cold_start=replace(config.cold_start, steps=7))
    forget_stale_results(tmp_path, config, bench, said.append)
    assert _left(tmp_path) == {"towers", "language", "perception", "base", "label_sft"}
    # Only what is measured: the models stay.
    _made(tmp_path)
    config = replace(config, attribution_method="blank", attribution_clips=7, eval_splits=("val_id",))
    forget_stale_results(tmp_path, config, bench, said.append)
    assert _left(tmp_path) == set(STAGES) and not (tmp_path / "eval").exists() and "models are kept" in said[-1]
    # Shared settings (the seed, the benchmark) rebuild everything, the random init too.
    for changed, benchmark in ((replace(config, seed=1), {"seed": 0}), (replace(config, seed=1), {"seed": 1})):
        _made(tmp_path)
        (bench / "synth_config.json").write_text(json.dumps(benchmark))
        forget_stale_results(tmp_path, changed, bench, said.append)
        assert not any((tmp_path / name).exists() for name in ("models", "runs", "eval")) and "rebuilt" in said[-1]
    # A folder without a record of its settings (or an unreadable one) is not trusted either.
    for record in (None, "not json", "[1, 2]"):
        _made(tmp_path)
        if record is None:
            (tmp_path / "demo_settings.json").unlink()
        else:
            (tmp_path / "demo_settings.json").write_text(record)
        forget_stale_results(tmp_path, replace(config, seed=1), bench, said.append)
        assert not (tmp_path / "models").exists()


def test_every_stage_the_demo_trains_has_its_settings_placed():
    """A stage missing from ``STAGES`` would never be retrained when its settings change; a setting named by
    two stages' own lists or by a stage and the measurement list would hide which one it changes."""
    from dataclasses import fields

    from r1omni.demo.config import DemoConfig
    from r1omni.demo.reuse import MEASUREMENT_ONLY

    assert set(STAGES) == {"towers", "language", "perception", *VARIANTS}
    own = [name for stage, (names, _) in STAGES.items() for name in names if stage != "rlvr_grounding"]
    assert len(own) == len(set(own)) and not set(own) & set(MEASUREMENT_ONLY)
    named = set(own) | set(MEASUREMENT_ONLY) | {"grounding_weight"}
    assert named <= {field.name for field in fields(DemoConfig)}


def test_attribution_removes_by_the_first_neutral_training_clip(tmp_path):
    from dataclasses import replace

    from r1omni.demo.config import DemoConfig
    from r1omni.demo.pipeline import _attribution_reference
    from r1omni.schema import Sample, write_samples

    train = tmp_path / "train.jsonl"
    write_samples(train, [Sample(id=f"c{i}", corpus="synth", video=f"c{i}.mp4", label=label)
                          for i, label in enumerate(["sad", "neutral", "neutral"])])
    config = DemoConfig.quick(output_dir=str(tmp_path))
    assert config.attribution_method == "reference"
    assert _attribution_reference(config, {"train": train}).id == "c1"
    assert _attribution_reference(replace(config, attribution_method="blank"), {"train": train}) is None
    write_samples(train, [Sample(id="c0", corpus="synth", video="c0.mp4", label="sad")])
    with pytest.raises(ValueError, match="train.jsonl: no clip labelled neutral"):
        _attribution_reference(config, {"train": train})
    with pytest.raises(ValueError, match="attribution_method must be one of"):
        DemoConfig(attribution_method="mute")


if __name__ == "__main__":  # rewrite the committed record from a fresh `demo --quick` folder (see above)
    COMMITTED.write_text(json.dumps(_record(Path(sys.argv[1])), indent=1, sort_keys=True) + "\n")
    print(f"wrote {COMMITTED}")
