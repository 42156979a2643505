"""Issue #26's demo remedies reach the runs they name: a tower phase (on by default) and a language phase (off by
default) before the base's other phases, a perception phase before the base's instruction mix (on by default; 0 steps:
none), the model switches (media norm, frame size), and modality dropout in label
SFT (off by default)."""

from __future__ import annotations

import pytest

from r1omni.demo import stages as demo_stages
from r1omni.demo.config import ALL_PARTS, TOWER_PARTS, DemoConfig, StageBudget, tower_budget
from r1omni.demo.stages import train_starting_points
from r1omni.synth import generate_benchmark


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    return generate_benchmark(tmp_path_factory.mktemp("bench"), preset="tiny", seed=0)


@pytest.fixture
def sft_calls(monkeypatch):
    """Every SFT run the demo starts: (start model, target, output folder name)."""
    calls, original = [], demo_stages.run_sft

    def recorded(config, model, data, target, out, *args, **kwargs):
        calls.append((model, target, out.name))
        return original(config, model, data, target, out, *args, **kwargs)

    monkeypatch.setattr(demo_stages, "run_sft", recorded)
    return calls


def tiny_config(tmp_path, **overrides) -> DemoConfig:
    settings = dict(output_dir=str(tmp_path), model_preset="qwen2.5-omni-tiny", clips_per_step=2, threads=1,
                    pretrain=StageBudget(steps=1, lr=1e-3, trainable=ALL_PARTS),
                    cold_start=StageBudget(steps=1, lr=1e-3, trainable=["llm"]), towers=tower_budget(0))
    return DemoConfig(**{**settings, **overrides})


def test_a_perception_phase_comes_before_the_instruction_mix_and_counts_in_the_base_budget(
        tiny_benchmark, tmp_path, sft_calls):
    config = tiny_config(tmp_path, perception=StageBudget(steps=2, lr=1e-3, trainable=ALL_PARTS))
    stages = train_starting_points(config, tmp_path, tiny_benchmark, lambda line: None)
    runs = tmp_path / "runs"
    assert sft_calls[:2] == [(str(tmp_path / "models" / "init"), "description", "perception"),
                             (str(runs / "perception" / "final"), "instruction", "base")]
    assert "perception" not in stages.models and "perception" not in stages.budgets  # a phase of the base
    assert stages.budgets["base"]["steps"] == 3 and stages.budgets["base"]["clip_views"] == 6


def test_without_a_perception_phase_the_base_starts_from_the_random_init(tiny_benchmark, tmp_path, sft_calls):
    config = tiny_config(tmp_path, perception=StageBudget(steps=0, lr=1e-3, trainable=ALL_PARTS))
    stages = train_starting_points(config, tmp_path, tiny_benchmark, lambda line: None)
    assert sft_calls[0] == (str(tmp_path / "models" / "init"), "instruction", "base")
    assert not (tmp_path / "runs" / "perception").exists() and stages.budgets["base"]["steps"] == 1


def test_label_sft_gets_the_configured_modality_dropout(tiny_benchmark, tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(demo_stages, "train_sft", lambda sft, media=None: seen.setdefault("dropout",
                                                                                       sft.modality_dropout))
    config = tiny_config(tmp_path, label_modality_dropout={"audio": 0.5})
    demo_stages.run_sft(config, "preset:qwen2.5-omni-tiny", tiny_benchmark["train"], "label", tmp_path / "l",
                     config.label_sft, modality_dropout=config.label_modality_dropout)
    assert seen["dropout"] == {"audio": 0.5}


def test_grpo_gets_the_configured_masked_modality_term(tiny_benchmark, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(demo_stages, "train_grpo", lambda grpo, media=None: seen.append(grpo.masked_modality))
    for given in ({}, {"weight": 0.02, "modalities": ["video", "audio"]}):
        config = tiny_config(tmp_path, grpo_masked_modality=given)
        demo_stages.run_grpo(config, "preset:qwen2.5-omni-tiny", tiny_benchmark["train"], tmp_path / "g", steps=1)
    assert seen[0].weight == 0 and (seen[1].weight, seen[1].modalities) == (0.02, ["video", "audio"])


def test_the_model_switches_reach_the_model(tiny_benchmark, tmp_path):
    from r1omni.models import load_policy

    config = tiny_config(tmp_path, perception=StageBudget(steps=0, lr=1e-3, trainable=ALL_PARTS))
    train_starting_points(config, tmp_path, tiny_benchmark, lambda line: None)
    policy = load_policy(tmp_path / "models" / "init")
    assert policy.media_norm is not None and policy.settings.frame_height == 112
    plain = tiny_config(tmp_path / "plain", media_norm=False, frame_size=None,
                        perception=StageBudget(steps=0, lr=1e-3, trainable=ALL_PARTS))
    train_starting_points(plain, tmp_path / "plain", tiny_benchmark, lambda line: None)
    policy = load_policy(tmp_path / "plain" / "models" / "init")
    assert policy.media_norm is None and policy.settings.frame_height == 56


@pytest.mark.parametrize("phase, budget, clip_views", [
    ("language", StageBudget(steps=2, lr=1e-3), 6),   # text has no clips: only the 2 + 1 SFT steps' clips count
    # 2 tower steps of 16 clips (the tiny benchmark's pre-training split has fewer: passes repeat) + 2 + 1 SFT
    ("towers", StageBudget(steps=2, lr=1e-3, trainable=TOWER_PARTS), 2 * 16 + 6),
])
def test_a_first_phase_comes_before_perception_and_counts_in_the_base_budget(tiny_benchmark, tmp_path, sft_calls,
                                                                              phase, budget, clip_views):
    config = tiny_config(tmp_path, perception=StageBudget(steps=2, lr=1e-3, trainable=ALL_PARTS), **{phase: budget})
    stages = train_starting_points(config, tmp_path, tiny_benchmark, lambda line: None)
    runs = tmp_path / "runs"
    assert (runs / phase / "final" / "config.json").is_file()
    assert sft_calls[:2] == [(str(runs / phase / "final"), "description", "perception"),
                             (str(runs / "perception" / "final"), "instruction", "base")]
    assert phase not in stages.models and phase not in stages.budgets
    assert stages.budgets["base"]["steps"] == 5 and stages.budgets["base"]["clip_views"] == clip_views


def test_the_tower_phase_is_on_by_default_and_a_folder_made_without_it_is_retrained(tmp_path):
    import json

    from r1omni.demo.reuse import forget_stale_results

    assert DemoConfig().towers.steps > 0 and DemoConfig.quick().towers.steps > 0
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "synth_config.json").write_text("{}")
    forget_stale_results(tmp_path, DemoConfig(), bench, lambda line: None)
    settings = json.loads((tmp_path / "demo_settings.json").read_text())
    assert settings["demo"]["towers"]["steps"] == DemoConfig().towers.steps
    del settings["demo"]["towers"]    # as written before the phase existed
    (tmp_path / "demo_settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    (tmp_path / "models" / "init").mkdir(parents=True)
    (tmp_path / "runs" / "base").mkdir(parents=True)
    said = []
    forget_stale_results(tmp_path, DemoConfig(), bench, said.append)
    # Every training stage starts after the towers: all retrained; the random init does not depend on them.
    assert not (tmp_path / "runs" / "base").exists() and (tmp_path / "models" / "init").is_dir()
    assert "towers, language, perception, base, cold_start_sft, label_sft, rlvr, rlvr_grounding retrained" in said[0]
