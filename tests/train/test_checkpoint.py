"""Checkpoints (``r1omni.train.checkpoint``): a run stopped mid-way and resumed ends with exactly the
parameters of an uninterrupted run, a half-written checkpoint is never picked, and a checkpoint's
``model/`` folder is a loadable model.

Exactness needs everything that decides the next step restored: weights, AdamW moments, the
learning-rate schedule, the data position and every RNG (GRPO samples its rollouts with torch's
global generator). Each piece missing breaks the equality below.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1omni.atomic import COMPLETE_MARKER
from r1omni.models import SamplingConfig, init_preset, load_policy
from r1omni.train import sft
from r1omni.train.checkpoint import latest_checkpoint, load_checkpoint
from r1omni.train.grpo import GRPOConfig, train_grpo
from r1omni.train.setup import OptimConfig
from r1omni.train.sft import SFTConfig, train_sft

TINY = "preset:qwen2.5-omni-tiny"
STEPS, SAVE_EVERY, ACCUMULATION, SEED = 6, 3, 2, 3


class Crash(RuntimeError):
    """Stands in for a killed job."""


class LetterE:
    """The toy reward of test_grpo (share of "e" characters) that can crash on a given call and
    counts its calls (one per micro-batch)."""

    def __init__(self) -> None:
        self.calls = 0
        self.crash_on_call: int | None = None

    def __call__(self, completions, **columns) -> list[float]:
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise Crash(f"killed on reward call {self.calls}")
        return [text.count("e") / max(len(text), 1) for text in completions]


def grpo_config(data: Path, output_dir: Path, resume: bool = False) -> GRPOConfig:
    # β > 0 (a reference model), accumulation, a warm-up then linear decay: all of it must resume.
    return GRPOConfig(model=TINY, data=str(data), output_dir=str(output_dir), max_steps=STEPS, save_every=SAVE_EVERY,
                      num_generations=4, clips_per_step=1, gradient_accumulation_steps=ACCUMULATION, beta=0.04,
                      seed=SEED, rewards={"letter_e": 1.0}, sampling=SamplingConfig(max_new_tokens=8, do_sample=True),
                      optim=OptimConfig(lr=1e-2, schedule="linear", warmup_ratio=0.2), resume=resume, num_threads=1)


def final_parameters(output_dir: Path) -> dict[str, torch.Tensor]:
    return dict(load_policy(output_dir / "final").thinker.state_dict())


def metric_rows(output_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("elapsed_seconds", "tokens_per_second")
             and not k.startswith("time/")} for row in rows]


def simulate_killed_writes(output_dir: Path) -> None:
    """What a job killed while saving leaves behind: a temporary folder (even one whose marker was
    already written) and a step folder without its COMPLETE marker, both newer than the good one."""
    folder = output_dir / "checkpoints"
    (folder / ".step-0000005.tmp").mkdir()
    (folder / ".step-0000005.tmp" / COMPLETE_MARKER).write_text("ok\n")
    shutil.copytree(folder / f"step-{SAVE_EVERY:07d}", folder / "step-0000004")
    (folder / "step-0000004" / COMPLETE_MARKER).unlink()


@pytest.fixture(scope="module")
def grpo_runs(tiny_dataset, tmp_path_factory) -> dict:
    """An uninterrupted run to STEPS, and a run killed during step 5 then resumed to STEPS."""
    reward = LetterE()
    rewards = {"letter_e": reward}
    whole = tmp_path_factory.mktemp("grpo_whole")
    train_grpo(grpo_config(tiny_dataset, whole), reward_functions=rewards)

    resumed = tmp_path_factory.mktemp("grpo_resumed")
    reward.calls, reward.crash_on_call = 0, (5 - 1) * ACCUMULATION + 1      # first micro-batch of step 5
    with pytest.raises(Crash):
        train_grpo(grpo_config(tiny_dataset, resumed), reward_functions=rewards)
    assert not (resumed / "final").exists()
    checkpoint = latest_checkpoint(resumed)
    killed_metrics = metric_rows(resumed)
    simulate_killed_writes(resumed)

    reward.calls, reward.crash_on_call = 0, None
    train_grpo(grpo_config(tiny_dataset, resumed, resume=True), reward_functions=rewards)
    resumed_calls = reward.calls
    return {"whole": whole, "resumed": resumed, "checkpoint": checkpoint, "resumed_calls": resumed_calls,
            "killed_metrics": killed_metrics}


def test_grpo_resume_gives_the_uninterrupted_parameters(grpo_runs):
    assert grpo_runs["checkpoint"].name == f"step-{SAVE_EVERY:07d}"
    # The resumed run really started after the checkpoint (3 steps x 2 micro-batches of rewards) ...
    assert grpo_runs["resumed_calls"] == (STEPS - SAVE_EVERY) * ACCUMULATION
    # ... and still ends bit-for-bit where the uninterrupted run ends.
    whole, resumed = final_parameters(grpo_runs["whole"]), final_parameters(grpo_runs["resumed"])
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name


def test_grpo_resume_replays_the_same_rollouts_and_metrics(grpo_runs):
    whole, resumed = metric_rows(grpo_runs["whole"]), metric_rows(grpo_runs["resumed"])
    assert [row["step"] for row in resumed] == list(range(1, STEPS + 1))      # step 4, logged twice, kept once
    assert resumed == whole
    assert grpo_runs["killed_metrics"] == whole[:4]
    assert len({row["reward"] for row in whole}) == STEPS                       # the rollouts really differ


def test_checkpoint_model_folder_loads_and_matches_the_saved_state(grpo_runs):
    checkpoint = grpo_runs["checkpoint"]
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == SAVE_EVERY and state["config"]["max_steps"] == STEPS
    policy = load_policy(checkpoint / "model")
    accelerate_state = load_file(str(checkpoint / "model.safetensors"))       # what load_state restores
    loaded = policy.module.state_dict()
    assert set(accelerate_state) <= set(loaded)
    for name, value in accelerate_state.items():
        assert torch.equal(loaded[name], value), name
    # After 3 updates it is not the initial model (the preset with the run's seed) any more.
    initial = init_preset(TINY.removeprefix("preset:"), seed=SEED).module.state_dict()
    assert not torch.equal(loaded["thinker.lm_head.weight"], initial["thinker.lm_head.weight"])


def test_latest_checkpoint_skips_unfinished_folders(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    folder = tmp_path / "checkpoints"
    for name, complete in (("step-0000002", True), ("step-0000010", True), ("step-0000012", False),
                           (".step-0000014.tmp", True), (".step-0000016.tmp", False)):
        (folder / name).mkdir(parents=True)
        if complete:
            (folder / name / COMPLETE_MARKER).write_text("ok\n")
    assert latest_checkpoint(tmp_path) == folder / "step-0000010"
    (folder / "step-0000010" / COMPLETE_MARKER).unlink()
    assert latest_checkpoint(tmp_path) == folder / "step-0000002"
    with pytest.raises(ValueError, match=r"step-0000012: not a complete checkpoint \(no COMPLETE marker\)"):
        load_checkpoint(None, folder / "step-0000012")


def test_sft_resume_gives_the_uninterrupted_parameters(tiny_dataset, tmp_path, monkeypatch):
    def config(output_dir: Path, resume: bool = False) -> SFTConfig:
        return SFTConfig(model=TINY, data=str(tiny_dataset), output_dir=str(output_dir), max_steps=4, save_every=1,
                         clips_per_step=2, gradient_accumulation_steps=2, seed=1, resume=resume, num_threads=1,
                         optim=OptimConfig(lr=3e-3, schedule="cosine", warmup_ratio=0.25))

    train_sft(config(tmp_path / "whole"))
    real_check = sft.check_finite

    def crash_in_step_4(step: int, **values: float) -> None:
        if step == 4:
            raise Crash("killed in step 4")
        real_check(step, **values)

    monkeypatch.setattr(sft, "check_finite", crash_in_step_4)
    with pytest.raises(Crash):
        train_sft(config(tmp_path / "resumed"))
    monkeypatch.undo()
    # Checkpoints of steps 1-3 were written; only the newest two are kept.
    kept = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert kept == ["step-0000002", "step-0000003"]
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as metrics:   # a kill or full disk mid-append
        metrics.write('{"step": 4, "elapsed_seconds": 1')
    train_sft(config(tmp_path / "resumed", resume=True))
    whole, resumed = final_parameters(tmp_path / "whole"), final_parameters(tmp_path / "resumed")
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    assert metric_rows(tmp_path / "resumed") == metric_rows(tmp_path / "whole")


def sft_run(data: Path, output_dir: Path, **overrides) -> SFTConfig:
    settings = dict(model=TINY, data=str(data), output_dir=str(output_dir), max_steps=6, save_every=2,
                    clips_per_step=2, seed=1, num_threads=1, optim=OptimConfig(lr=3e-3))
    return SFTConfig(**{**settings, **overrides})


@pytest.fixture
def finished_run(tiny_dataset, tmp_path) -> Path:
    """Run A: 6 steps, checkpoints of steps 2 and 4 kept, a final model."""
    train_sft(sft_run(tiny_dataset, tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    return tmp_path / "run"


def test_a_new_run_refuses_a_folder_holding_another_runs_checkpoints(tiny_dataset, finished_run):
    # Run B's only checkpoint (step 1) used to be deleted at once: keep-last kept A's higher steps.
    other = sft_run(tiny_dataset, finished_run, max_steps=2, save_every=1, seed=5, optim=OptimConfig(lr=1e-3))
    with pytest.raises(ValueError, match=r"run already holds a run's checkpoints \(newest: step-0000004\); "
                                         r"pass resume=true .* overwrite=true .* another output_dir"):
        train_sft(other)
    assert sorted(p.name for p in (finished_run / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]


def test_resume_refuses_another_runs_checkpoint_naming_what_differs(tiny_dataset, finished_run):
    # B used to resume from A's step 4, past its own 2 steps, and ship A's weights as its final model.
    other = sft_run(tiny_dataset, finished_run, max_steps=2, save_every=1, seed=5, optim=OptimConfig(lr=1e-3),
                    resume=True)
    with pytest.raises(ValueError, match=r"step-0000004 belongs to another run; its config differs from this one "
                                         r"in max_steps 6 -> 2; optim.lr 0.003 -> 0.001; seed 1 -> 5 \(checkpoint -> now\)"):
        train_sft(other)


def test_resume_accepts_settings_that_do_not_change_the_result(tiny_dataset, finished_run):
    from r1omni.train.checkpoint import run_digest

    first = final_parameters(finished_run)
    shutil.rmtree(finished_run / "final")
    train_sft(sft_run(tiny_dataset, finished_run, save_every=3, log_every=2, resume=True))   # steps 5 and 6 again
    state = json.loads((finished_run / "checkpoints" / "step-0000004" / "state.json").read_text())
    assert state["run_digest"] == run_digest(state["config"])
    resumed = final_parameters(finished_run)
    assert all(torch.equal(first[name], resumed[name]) for name in first)


def test_overwrite_deletes_the_earlier_run_and_starts_over(tiny_dataset, finished_run, tmp_path):
    def other(output_dir: Path, **flags) -> SFTConfig:
        return sft_run(tiny_dataset, output_dir, max_steps=3, save_every=1, seed=5, optim=OptimConfig(lr=1e-3),
                       **flags)

    train_sft(other(finished_run, overwrite=True))
    train_sft(other(tmp_path / "fresh"))
    assert sorted(p.name for p in (finished_run / "checkpoints").iterdir()) == ["step-0000001", "step-0000002"]
    assert metric_rows(finished_run) == metric_rows(tmp_path / "fresh")
    overwritten, fresh = final_parameters(finished_run), final_parameters(tmp_path / "fresh")
    assert all(torch.equal(fresh[name], overwritten[name]) for name in fresh)
    with pytest.raises(ValueError, match="resume=true continues the run in output_dir and overwrite=true deletes it"):
        other(finished_run, overwrite=True, resume=True)


def test_keep_last_counts_only_the_current_runs_checkpoints(tiny_dataset, tmp_path):
    from r1omni.train.checkpoint import save_checkpoint
    from r1omni.train.setup import make_accelerator
    from r1omni.yamlconfig import config_to_dict

    foreign = tmp_path / "checkpoints" / "step-0000100"      # left by another run (or an older r1omni)
    foreign.mkdir(parents=True)
    (foreign / "state.json").write_text(json.dumps({"step": 100, "config": {"seed": 99}}))
    (foreign / COMPLETE_MARKER).write_text("ok\n")
    config = config_to_dict(sft_run(tiny_dataset, tmp_path))
    accelerator, policy = make_accelerator(), init_preset(TINY.removeprefix("preset:"), seed=0)
    for step in (1, 2, 3):
        save_checkpoint(accelerator, policy, tmp_path, step, config, {}, keep_last=2)
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["step-0000002", "step-0000003", "step-0000100"]


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(("damage", "named"), [
    (lambda c: cut_in_half(c / "model.safetensors"), r"model.safetensors: \d+ bytes, \d+ when saved"),
    (lambda c: (c / "model.safetensors").unlink(), r"model.safetensors: missing"),
    (lambda c: cut_in_half(c / "optimizer.bin"), r"optimizer.bin: \d+ bytes, \d+ when saved"),
    (lambda c: (c / "state.json").write_text('{"step": '), r"state.json: cannot read the checkpoint's state"),
], ids=["weights cut", "weights deleted", "optimizer cut", "state cut"])
def test_resume_passes_over_a_damaged_newest_checkpoint(tiny_dataset, finished_run, caplog, damage, named):
    whole = final_parameters(finished_run)
    shutil.rmtree(finished_run / "final")
    damage(finished_run / "checkpoints" / "step-0000004")
    with caplog.at_level("WARNING", logger="r1omni.train.checkpoint"):
        train_sft(sft_run(tiny_dataset, finished_run, resume=True))        # from step 2: steps 3 to 6 again
    assert re.search(rf"step-0000004 is damaged \(.*step-0000004/{named}.*\); trying the checkpoint before it",
                     caplog.text)
    resumed = final_parameters(finished_run)
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    assert [row["step"] for row in metric_rows(finished_run)] == list(range(1, 7))


def test_resume_without_an_intact_checkpoint_names_each_damage(tiny_dataset, finished_run):
    for step in ("step-0000002", "step-0000004"):
        (finished_run / "checkpoints" / step / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no intact checkpoint to resume from \(.*step-0000004/model.safetensors: "
                                         r"missing; .*step-0000002/model.safetensors: missing\); pass overwrite=true"):
        train_sft(sft_run(tiny_dataset, finished_run, resume=True))


def test_a_run_removes_what_killed_saves_left_and_nothing_else(tiny_dataset, tmp_path):
    left = [tmp_path / ".final.k3j2x9.tmp", tmp_path / "..final.k3j2x9.tmp.p0q8.tmp",
            tmp_path / "checkpoints" / ".step-0000050.tmp", tmp_path / "snapshots" / ".step-0000003.zz81.tmp"]
    kept = [tmp_path / ".final.old", tmp_path / "notes" / ".final.k3j2x9.tmp", tmp_path / ".step-0000050.tmp"]
    for path in left + kept:
        (path / "model").mkdir(parents=True)
        (path / "model" / "model.safetensors").write_bytes(b"x" * 64)
    train_sft(sft_run(tiny_dataset, tmp_path, max_steps=1, save_every=0))
    assert [path for path in left if path.exists()] == [] and all(path.exists() for path in kept)


def test_a_checkpoint_saved_with_the_retired_fast_decoder_belongs_to_todays_run():
    """``sampling.decoder`` is gone; ``fast`` was today's one loop, so such a run resumes, ``reference`` does not."""
    from r1omni.train.checkpoint import run_digest
    from r1omni.yamlconfig import config_to_dict

    today = config_to_dict(grpo_config(Path("data.jsonl"), Path("out")))
    earlier = json.loads(json.dumps(today))
    earlier["sampling"]["decoder"] = "fast"
    assert run_digest(earlier) == run_digest(today)
    earlier["sampling"]["decoder"] = "reference"
    assert run_digest(earlier) != run_digest(today)
