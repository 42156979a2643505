"""The set-up both recipes share (``r1omni.train.setup``): the run-control fields written once and kept flat
in both configs, and ``prepare_run``'s seams (a caller's policy and loader, a frozen reference copied from
a passed policy), used by ``train_sft`` end to end."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from r1omni.clips import ClipLoader
from r1omni.models import init_preset, load_policy
from r1omni.train.grpo import GRPOConfig
from r1omni.train.setup import OptimConfig, RunSettings, build_optimizer, prepare_run, warmup_steps
from r1omni.train.sft import SFTConfig, train_sft
from r1omni.yamlconfig import load_config

PRESET = "qwen2.5-omni-tiny"


def test_both_configs_take_the_run_settings_flat_and_declare_none_again():
    shared = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    for config_class in (SFTConfig, GRPOConfig):
        fields = {f.name: f.default for f in dataclasses.fields(config_class)}
        assert {name: fields[name] for name in shared} == shared, config_class
        assert not set(shared) & set(config_class.__dict__["__annotations__"]), config_class  # documented once
    config = load_config(SFTConfig, None, ["model=m", "data=d", "output_dir=o", "seed=3", "save_every=5"])
    assert (config.seed, config.save_every) == (3, 5)


class RecordingLoader(ClipLoader):
    def load_many(self, samples):
        self.loaded = getattr(self, "loaded", []) + [sample.id for sample in samples]
        return super().load_many(samples)


def test_a_passed_policy_and_loader_are_the_ones_used(tiny_dataset, tmp_path):
    policy = init_preset(PRESET, seed=0)
    loader = RecordingLoader.for_policy(policy, prompt="train")
    config = SFTConfig(model="never-opened", data=str(tiny_dataset), output_dir=str(tmp_path), max_steps=2,
                       clips_per_step=2, num_threads=1, optim=OptimConfig(lr=3e-3))
    before = {name: param.detach().clone() for name, param in policy.thinker.named_parameters()}
    result = train_sft(config, policy=policy, loader=loader)
    assert len(loader.loaded) == 4
    trained = dict(load_policy(result.final_model).thinker.named_parameters())
    moved = [name for name, param in policy.thinker.named_parameters() if not torch.equal(param, before[name])]
    assert moved and all(torch.equal(trained[name], param) for name, param in policy.thinker.named_parameters())


def test_the_reference_of_a_passed_policy_is_a_frozen_copy(tiny_dataset, tmp_path):
    policy = init_preset(PRESET, seed=0)
    config = SFTConfig(model="never-opened", data=str(tiny_dataset), output_dir=str(tmp_path), max_steps=1,
                       clips_per_step=2, num_threads=1)
    run = prepare_run(config, policy=policy, reference=True)
    assert run.policy is policy and run.reference is not policy
    reference = dict(run.reference.thinker.named_parameters())
    for name, param in policy.thinker.named_parameters():
        assert torch.equal(reference[name], param) and not reference[name].requires_grad
    assert not run.reference.module.training


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("warmup_ratio, total_steps", [(0.0, 7), (0.03, 100), (0.25, 10), (0.1, 13)])
def test_the_learning_rate_sequence_is_get_schedulers(schedule, warmup_ratio, total_steps):
    """The rate of every update equals what ``transformers.get_scheduler`` gives the HF Trainer for the same
    settings (warm-up ``ceil(ratio * total)`` steps from 0), on each parameter group."""
    from transformers import get_scheduler

    policy = init_preset(PRESET, seed=0)
    config = OptimConfig(lr=2e-3, schedule=schedule, warmup_ratio=warmup_ratio,
                         lr_multipliers={"vision_projector": 0.5})
    optimizer, scheduler = build_optimizer(policy, config, total_steps)
    names = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
    reference_optimizer = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": config.lr * factor}
                                           for factor in (1.0, 0.5)], lr=config.lr)
    reference = get_scheduler(names[schedule], reference_optimizer,
                              num_warmup_steps=math.ceil(warmup_ratio * total_steps), num_training_steps=total_steps)
    ours, theirs = [], []
    for _ in range(total_steps):
        ours.append(scheduler.get_last_lr())
        theirs.append(reference.get_last_lr())
        optimizer.step()
        scheduler.step()
        reference_optimizer.step()
        reference.step()
    assert ours == theirs
    assert warmup_steps(warmup_ratio, total_steps) == math.ceil(warmup_ratio * total_steps)
    if warmup_ratio:
        assert ours[0][0] == 0.0      # the warm-up starts from 0, as the HF Trainer's does
