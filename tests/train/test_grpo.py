"""GRPO (``r1omni.train.grpo``) on the tiny Qwen2.5-Omni preset with generated clips.

A random tiny model never writes ``<think>…</think><answer>…</answer>``, so the paper's rewards
give no signal. The toy verifiable task instead pays the share of the completion's characters
that are the letter "e": a random model earns about 0.1 with some spread inside every group, and
a model that learned the task writes far more of them. A working policy-gradient loop must raise it
within a few dozen steps; a broken one (wrong sign, advantages not aligned with their rows,
gradients not reaching the weights) leaves it flat.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from r1omni.clips import ClipLoader
from r1omni.models import SamplingConfig, init_preset
from r1omni.models.qwen_omni import QwenOmniPolicy
from r1omni.schema import Sample, read_samples, write_samples
from r1omni.train.grpo import GRPOConfig, LossConfig, MaskedModalityConfig, masked_modality_logprobs, train_grpo
from r1omni.train.losses import masked_modality_loss
from r1omni.train.setup import OptimConfig
from r1omni.train.tracking import NonFiniteError

TINY = "preset:qwen2.5-omni-tiny"
TOY_REWARD = "letter_e"
LR = 1e-2
TOY_RUN_PEAK_LR = 2e-2   # the linear decay of toy_run halves the mean rate


def letter_e_share(completions, **columns) -> list[float]:
    """Share of a completion's characters that are "e" (0 for an empty completion)."""
    return [text.count("e") / max(len(text), 1) for text in completions]


# The toy reward is passed in, as a user's own reward would be (TRL's contract); no module state changes.
TOY_REWARDS = {TOY_REWARD: letter_e_share}


def toy_config(data: Path, output_dir: Path, **overrides) -> GRPOConfig:
    settings = dict(model=TINY, data=str(data), output_dir=str(output_dir), max_steps=20, num_generations=4,
                    clips_per_step=2, gradient_accumulation_steps=1, beta=0.0, seed=0,
                    rewards={TOY_REWARD: 1.0}, sampling=SamplingConfig(max_new_tokens=8, do_sample=True),
                    optim=OptimConfig(lr=LR, schedule="constant", warmup_ratio=0.0), num_threads=1)
    settings.update(overrides)
    return GRPOConfig(**settings)


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def toy_run(tiny_dataset, tmp_path_factory) -> list[dict]:
    """One 20-step run on the toy task (β = 0, linear decay without warm-up); its metrics rows."""
    output_dir = tmp_path_factory.mktemp("grpo_toy")
    config = toy_config(tiny_dataset, output_dir,
                        optim=OptimConfig(lr=TOY_RUN_PEAK_LR, schedule="linear", warmup_ratio=0.0))
    result = train_grpo(config, reward_functions=TOY_REWARDS)
    assert result.steps == 20 and (result.final_model / "config.json").is_file()
    return read_metrics(output_dir)


def test_mean_reward_rises_on_toy_task(toy_run):
    rewards = [row["reward"] for row in toy_run]
    assert len(rewards) == 20
    # Random weights earn ~0.1; with seeds 0-3 the last five steps average 0.36-0.50.
    assert mean(rewards[-5:]) > mean(rewards[:5]) + 0.15, rewards


def test_metrics_have_promised_keys(toy_run):
    promised = {"reward", TOY_REWARD, "reward_std", "kl", "completion_length", "clip_fraction", "lr",
                "tokens_per_second", "loss", "grad_norm", "groups_with_signal",
                "time/rollout", "time/reference", "time/policy", "time/optimizer"}
    for row in toy_run:
        assert promised <= set(row), promised - set(row)
        assert all(math.isfinite(row[key]) for key in promised)
        assert row["reward"] == pytest.approx(row[TOY_REWARD])          # the only component, weight 1
        assert 0 < row["completion_length"] <= 8
        assert row["kl"] == 0.0                                         # beta = 0: no reference
        assert row["clip_fraction"] == 0.0                              # one update per rollout never clips
        assert row["tokens_per_second"] > 0
    assert [row["step"] for row in toy_run] == list(range(1, 21))


def test_logged_lr_is_the_lr_of_the_step(toy_run):
    # Linear decay over 20 steps without warm-up: step s updates with lr * (1 - (s - 1) / 20).
    for row in toy_run:
        assert row["lr"] == pytest.approx(TOY_RUN_PEAK_LR * (1 - (row["step"] - 1) / 20)), row["step"]


def test_reward_rises_with_kl_to_a_saved_reference(tiny_dataset, tiny_model_dir, tmp_path):
    """β > 0 with a saved model folder: the reference is the initial policy (KL 0 at step 1)."""
    config = toy_config(tiny_dataset, tmp_path, model=str(tiny_model_dir), beta=0.04, max_steps=30)
    train_grpo(config, reward_functions=TOY_REWARDS)
    rows = read_metrics(tmp_path)
    rewards = [row["reward"] for row in rows]
    # The KL term slows the climb (30 steps instead of 20): seeds 0/1/2 go from ~0.08 to 0.33-0.43.
    assert mean(rewards[-5:]) > mean(rewards[:5]) + 0.15, rewards
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)        # nothing has moved away from the reference yet
    assert all(row["kl"] > 0 for row in rows[1:])
    assert rows[-1]["kl"] > rows[1]["kl"]


def test_several_updates_per_rollout_clip(tiny_dataset, tmp_path):
    """μ = 2: the second update sees ratios away from 1 at this learning rate, so clipping fires."""
    config = toy_config(tiny_dataset, tmp_path, max_steps=3, loss=LossConfig(num_iterations=2))
    train_grpo(config, reward_functions=TOY_REWARDS)
    rows = read_metrics(tmp_path)
    assert all(0 <= row["clip_fraction"] <= 1 for row in rows)
    assert max(row["clip_fraction"] for row in rows) > 0


def test_non_finite_reward_stops_the_run(tiny_dataset, tmp_path):
    calls = []

    def nan_on_second_step(completions, **columns):
        calls.append(len(completions))
        return [float("nan") if len(calls) == 2 else 0.5 for _ in completions]

    config = toy_config(tiny_dataset, tmp_path, max_steps=4, rewards={"nan_later": 1.0})
    with pytest.raises(NonFiniteError, match=r"step 2: reward is nan"):
        train_grpo(config, reward_functions={"nan_later": nan_on_second_step})
    assert len(calls) == 2
    assert not (tmp_path / "final").exists()


def test_a_clip_the_model_cannot_read_is_skipped_and_counted(short_audio_dataset, tmp_path):
    result = train_grpo(toy_config(short_audio_dataset, tmp_path, max_steps=1, clips_per_step=2),
                        reward_functions=TOY_REWARDS)
    assert result.skipped_clips == 1 and read_metrics(tmp_path)[0]["skipped_clips"] == 1


def test_unlabelled_samples_are_rejected(tiny_dataset, tmp_path):
    source = json.loads(tiny_dataset.read_text().splitlines()[0])
    manifest = tmp_path / "unlabelled.jsonl"
    video = str((tiny_dataset.parent / source["video"]).resolve())
    write_samples(manifest, [Sample(id="nolabel", corpus="toy", video=video)])
    with pytest.raises(ValueError, match=r"unlabelled\.jsonl: 1 sample\(s\) have no label \(e\.g\. 'nolabel'\)"):
        train_grpo(toy_config(manifest, tmp_path / "out"), reward_functions=TOY_REWARDS)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"num_generations": 1}, r"num_generations must be >= 2"),
    ({"sampling": SamplingConfig(max_new_tokens=8, do_sample=False)}, r"set sampling\.do_sample=true"),
    ({"rewards": {}}, r"at least one reward"),
    ({"beta": -0.1}, r"beta must be >= 0"),
    ({"rollout_engine": "sglang"}, r"rollout_engine must be one of \['hf', 'vllm'\]"),
    ({"rollout_engine": "vllm"}, r"needs vllm\.model=PATH"),
    ({"max_steps": -5}, r"max_steps must be >= 1, got -5; leave it unset"),
    ({"epochs": 0.0}, r"set epochs > 0 or max_steps"),
    ({"save_every": -1}, r"save_every must be >= 0 \(0 saves only the final model\), got -1"),
    ({"clips_per_step": 0}, r"clips_per_step and gradient_accumulation_steps must be >= 1"),
])
def test_bad_config_is_rejected_with_a_fix(overrides, message):
    settings = dict(model=TINY, data="train.jsonl", output_dir="out", sampling=SamplingConfig(do_sample=True))
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**settings)


def test_a_custom_reward_trains_without_touching_module_state(toy_run):
    from r1omni.rewards import REWARD_FUNCTIONS

    assert set(REWARD_FUNCTIONS) == {"accuracy", "format", "grounding", "consistency"}
    assert all(TOY_REWARD in row for row in toy_run)


def test_rewards_receive_every_column_row_aligned(tiny_dataset, tmp_path):
    """Each reward gets label, subtitle and the samples' meta (here the true cues), one value per completion,
    in the rows' clip order; the built-in grounding and consistency rewards train beside a custom one."""
    samples = [dataclasses.replace(sample, meta={"cues": {"voice": {"pitch": 0.8 if i else -0.8}}, "rank": i})
               for i, sample in enumerate(read_samples(tiny_dataset)[:3])]
    manifest = tmp_path / "train.jsonl"
    write_samples(manifest, samples)
    seen: list[dict] = []

    def recording(completions, **columns):
        seen.append(columns)
        return letter_e_share(completions)

    config = toy_config(manifest, tmp_path / "out", max_steps=2, clips_per_step=3,
                        rewards={"recording": 1.0, "grounding": 0.5, "consistency": 0.5})
    train_grpo(config, reward_functions={"recording": recording})
    assert len(seen) == 2
    for columns in seen:
        assert set(columns) == {"label", "subtitle", "cues", "rank"}
        assert all(len(values) == 12 for values in columns.values())   # 3 clips x G=4
        by_rank = {rank: (label, subtitle, cues) for rank, label, subtitle, cues in
                   zip(columns["rank"], columns["label"], columns["subtitle"], columns["cues"])}
        assert by_rank == {i: (s.label, s.subtitle, s.meta["cues"]) for i, s in enumerate(samples)}
        assert columns["rank"] == sorted(columns["rank"], key=columns["rank"][::4].index)   # groups contiguous
    rows = read_metrics(tmp_path / "out")
    assert all({"grounding", "consistency", "recording"} <= set(row) for row in rows)


def test_unknown_reward_names_fail_before_anything_loads(tmp_path):
    config = toy_config(tmp_path / "missing.jsonl", tmp_path / "out", rewards={"acuracy": 1.0})
    with pytest.raises(ValueError, match=r"unknown reward\(s\) \['acuracy'\]; built in: \['accuracy', 'consistency'"):
        train_grpo(config)
    with pytest.raises(ValueError, match=r"passed in: \['letter_e'\]"):
        train_grpo(config, reward_functions=TOY_REWARDS)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"aggregation": "token_mean"}, r"loss\.aggregation must be one of \('grpo', 'dapo', 'dr_grpo'\)"),
    ({"advantage_scale": "std"}, r"loss\.advantage_scale must be one of"),
    ({"num_iterations": 0}, r"loss\.num_iterations must be >= 1"),
])
def test_bad_loss_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**overrides)


# -- the masked-modality (PAPO) term, off by default -------------------------------------------------

MASKED_KEYS = {"masked_kl/video", "masked_kl/audio", "masked_entropy/video", "masked_entropy/audio", "entropy",
               "masked_kl_capped", "time/masked"}


def count_calls(monkeypatch) -> dict[str, int]:
    """Count the policy's prepare and token_logprobs calls (every forward the trainer makes goes through one)."""
    calls = {"prepare": 0, "token_logprobs": 0}
    for name in calls:
        original = getattr(QwenOmniPolicy, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(QwenOmniPolicy, name, counting)
    return calls


def test_the_masked_term_is_off_by_default_and_costs_nothing(tiny_dataset, tmp_path, monkeypatch):
    """Weight 0: one prepare per micro-batch and one scoring pass per update (β = 0), as before the option
    existed, and none of its metrics."""
    assert GRPOConfig(model=TINY, data="x", output_dir="y").masked_modality.weight == 0.0
    calls = count_calls(monkeypatch)
    train_grpo(toy_config(tiny_dataset, tmp_path, max_steps=2), reward_functions=TOY_REWARDS)
    assert calls == {"prepare": 2, "token_logprobs": 2}
    assert all(not MASKED_KEYS & set(row) for row in read_metrics(tmp_path))


def test_the_masked_term_is_logged_every_step(tiny_dataset, tmp_path, monkeypatch):
    calls = count_calls(monkeypatch)
    config = toy_config(tiny_dataset, tmp_path, max_steps=2,
                        masked_modality=MaskedModalityConfig(weight=0.02, modalities=["video", "audio"]))
    train_grpo(config, reward_functions=TOY_REWARDS)
    assert calls == {"prepare": 2 + 2 * 2, "token_logprobs": 2 + 2 * 2}   # one more of each per removed modality
    rows = read_metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert MASKED_KEYS <= set(row)
        assert all(math.isfinite(row[key]) for key in MASKED_KEYS)
        assert row["masked_kl/video"] > 0 and row["masked_kl/audio"] > 0   # a random model reads both media
        assert 0.0 <= row["masked_kl_capped"] <= 1.0 and row["entropy"] > 0


@pytest.fixture(scope="module")
def rollout_of_a_tiny_model(tiny_dataset):
    """Two clips of the tiny dataset and four sampled completions of each, from a random tiny preset."""
    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    clips = ClipLoader.for_policy(policy).load_many(read_samples(tiny_dataset)[:2]).clips
    completions = policy.generate(policy.prepare(clips), 4, SamplingConfig(max_new_tokens=8, do_sample=True))
    return policy, clips, completions


@pytest.mark.parametrize("modality,projector", [("video", "visual.merger.mlp.2"), ("audio", "audio_tower.proj")])
def test_the_masked_kl_is_zero_for_a_model_that_ignores_the_modality(rollout_of_a_tiny_model, modality, projector):
    """A model whose projector maps every input to zero gives the same answer with the modality or without:
    no KL, no push. The same model with its projector intact reads it: KL > 0."""
    policy, clips, completions = rollout_of_a_tiny_model
    ids, mask, rows = completions.ids, completions.mask, completions.clip_index

    def masked_kl() -> float:
        with torch.no_grad():
            full = policy.token_logprobs(policy.prepare(clips), ids, rows)                  # (N, C)
        masked = masked_modality_logprobs(policy, clips, ids, rows, [modality])
        return masked_modality_loss(full, masked, mask, weight=1.0).kl[modality]

    assert masked_kl() > 1e-6
    layer = policy.thinker.model.get_submodule(projector)
    saved = {name: value.clone() for name, value in layer.state_dict().items()}
    try:
        with torch.no_grad():
            for value in layer.parameters():
                value.zero_()
        assert masked_kl() == 0.0
    finally:
        layer.load_state_dict(saved)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"weight": -0.1}, r"must be >= 0"),
    ({"modalities": ["face"]}, r"distinct modalities of \('video', 'audio'\)"),
    ({"modalities": []}, r"distinct modalities"),
    ({"method": "mute"}, r"method must be one of \('blank', 'omit'\)"),
    ({"kl_cap": 0.0}, r"kl_cap must be > 0"),
])
def test_bad_masked_modality_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        MaskedModalityConfig(**overrides)
