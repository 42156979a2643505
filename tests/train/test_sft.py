"""SFT (``r1omni.train.sft``) on the tiny Qwen2.5-Omni preset with generated clips: the loss falls,
only the assistant's tokens are targets, each target kind says what it should, frozen parts stay
put, trainable media parts receive gradients, and bad settings are refused with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1omni.clips import SAMPLE_QUESTION, ClipLoader
from r1omni.media import MediaError
from r1omni.models import init_preset, load_policy
from r1omni.schema import read_samples, write_samples
from r1omni.template import render_completion
from r1omni.train.data import TARGETS, StepOrder, target_text
from r1omni.train.setup import OptimConfig, set_trainable_parts
from r1omni.train.sft import SFTConfig, train_sft

PRESET = "qwen2.5-omni-tiny"
MEDIA_PARTS = ("vision_tower", "vision_projector", "audio_tower", "audio_projector")
# The audio tower's begin/end-of-audio embedding: the thinker never reads it (see
# r1omni.models.qwen_omni.policy), so it gets no gradient even when its part trains.
UNUSED_BY_THE_THINKER = {"model.audio_tower.audio_bos_eos_token.weight"}


def sft_config(data: Path, output_dir: Path, **overrides) -> SFTConfig:
    settings = dict(model=f"preset:{PRESET}", data=str(data), output_dir=str(output_dir), max_steps=2,
                    clips_per_step=2, seed=0, optim=OptimConfig(lr=3e-3, schedule="constant", warmup_ratio=0.0),
                    num_threads=1)
    settings.update(overrides)
    return SFTConfig(**settings)


def fixed_batch_loss(policy, samples, target: str = "reasoning", prompt: str = "train") -> float:
    """Mean NLL of the target tokens of ``samples``, computed outside the trainer."""
    loader = ClipLoader(num_frames=policy.num_frames, prompt=prompt)
    batch = policy.prepare([loader.load(sample) for sample in samples])
    ids, mask = policy.encode_completions([target_text(sample, target) for sample in samples])
    with torch.no_grad():
        logp = policy.token_logprobs(batch, ids, torch.arange(len(samples)))      # (B, C)
    return float(-(logp * mask).sum() / mask.sum())


def parameters(policy) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in policy.thinker.named_parameters()}


def test_sft_reduces_the_loss_on_a_fixed_batch(tiny_dataset, tmp_path):
    samples = read_samples(tiny_dataset)
    # Every step trains on all six clips, so the batch is the same at every step.
    config = sft_config(tiny_dataset, tmp_path, max_steps=8, clips_per_step=len(samples))
    before = fixed_batch_loss(init_preset(PRESET, seed=config.seed), samples)
    result = train_sft(config)
    after = fixed_batch_loss(load_policy(result.final_model), samples)
    # Random weights: ~6.3 nats per token (log of a ~500-token vocabulary); after 8 steps ~4.
    assert after < before - 1.0, (before, after)
    logged = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # The trainer's step-1 loss is the NLL of the assistant tokens only, as computed above.
    assert logged[0] == pytest.approx(before, abs=1e-4)
    assert logged[-1] < logged[0]


def test_a_clip_the_model_cannot_read_is_skipped_and_counted(short_audio_dataset, tmp_path):
    result = train_sft(sft_config(short_audio_dataset, tmp_path, max_steps=1, clips_per_step=2))
    assert result.skipped_clips == 1
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["skipped_clips"] == 1


def test_only_the_assistant_tokens_are_scored(tiny_dataset):
    policy = init_preset(PRESET, seed=0)
    samples = read_samples(tiny_dataset)[:2]
    targets = [target_text(sample, "reasoning") for sample in samples]
    ids, mask = policy.encode_completions(targets)
    # The target is the completion text plus the end-of-turn token, nothing of the prompt.
    expected_counts = [len(policy.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 for text in targets]
    assert mask.sum(dim=1).tolist() == expected_counts
    short, long = (ClipLoader(num_frames=policy.num_frames, prompt=prompt) for prompt in
                   ("train", "Watch the clip, listen closely, read the subtitle and tell me the emotion. " * 3))
    short_batch = policy.prepare([short.load(sample) for sample in samples])
    long_batch = policy.prepare([long.load(sample) for sample in samples])
    assert long_batch.input_ids.shape[1] > short_batch.input_ids.shape[1] + 20
    with torch.no_grad():
        short_logp = policy.token_logprobs(short_batch, ids, torch.arange(2))
        long_logp = policy.token_logprobs(long_batch, ids, torch.arange(2))
    # One log-prob per completion token whatever the prompt length; the prompt conditions them.
    assert short_logp.shape == long_logp.shape == ids.shape
    assert not torch.allclose(short_logp, long_logp)
    assert fixed_batch_loss(policy, samples) != fixed_batch_loss(policy, samples, prompt="describe")


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_trains_on_its_text(target, tiny_dataset, tmp_path):
    config = sft_config(tiny_dataset, tmp_path, max_steps=1, clips_per_step=1, target=target, sample_every=1)
    train_sft(config)
    first = read_samples(tiny_dataset)[StepOrder(6, 1, 1, config.seed).indices(0, 0)[0]]
    expected = {"reasoning": render_completion(first.reasoning, first.label), "label": first.label,
                "description": first.meta["description"], "instruction": first.meta["answer"]}[target]
    logged = json.loads((tmp_path / "samples.jsonl").read_text().splitlines()[0])
    assert logged["target"] == expected
    assert config.prompt == {"description": "describe", "instruction": SAMPLE_QUESTION}.get(target, "train")


def test_instruction_data_asks_each_clips_own_question(tiny_dataset):
    sample = read_samples(tiny_dataset)[2]
    clip = ClipLoader(num_frames=2, prompt=SAMPLE_QUESTION).load(sample)
    assert clip.question.endswith("How loud is clip 2?") and "line number 2" in clip.question
    sample.meta.pop("question")
    with pytest.raises(MediaError, match="no meta\\['question'\\]"):
        ClipLoader(num_frames=2, prompt=SAMPLE_QUESTION).load(sample)


def test_snapshots_hold_the_model_after_the_given_steps(tiny_dataset, tmp_path):
    result = train_sft(sft_config(tiny_dataset, tmp_path, max_steps=3, clips_per_step=2, snapshot_steps=[1, 3]))
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snapshots == ["step-0000001", "step-0000003"]
    final = parameters(load_policy(result.final_model))
    last = parameters(load_policy(tmp_path / "snapshots" / snapshots[1]))
    first = parameters(load_policy(tmp_path / "snapshots" / snapshots[0]))
    assert all(torch.equal(final[name], last[name]) for name in final)
    assert any(not torch.equal(final[name], first[name]) for name in final)


def test_samples_without_the_target_are_rejected(tiny_dataset, tmp_path):
    samples = read_samples(tiny_dataset)
    samples[3].reasoning = None
    manifest = tmp_path / "no_reasoning.jsonl"
    write_samples(manifest, samples)
    with pytest.raises(ValueError, match=r"no_reasoning\.jsonl: 1 sample\(s\) cannot be used for target "
                                         r"'reasoning', e\.g\. sample 'clip3' has no reasoning"):
        train_sft(sft_config(manifest, tmp_path / "out"))
    train_sft(sft_config(manifest, tmp_path / "label", target="label", max_steps=1))   # labels are all there


def test_frozen_towers_stay_put_and_the_llm_moves(tiny_dataset, tmp_path):
    result = train_sft(sft_config(tiny_dataset, tmp_path, trainable=["llm"]))
    before = parameters(init_preset(PRESET, seed=0))
    after = parameters(load_policy(result.final_model))
    assert before.keys() == after.keys()
    media = [name for name in before if name.startswith(("model.visual.", "model.audio_tower."))]
    llm = [name for name in before if name.startswith("model.language_model.")]
    assert len(media) > 50 and len(llm) > 20
    for name in media:
        assert torch.equal(before[name], after[name]), f"frozen {name} changed"
    for name in llm:
        assert not torch.equal(before[name], after[name]), f"trainable {name} did not change"


def test_trainable_media_parts_receive_gradients(tiny_dataset):
    policy = init_preset(PRESET, seed=0)
    counts = set_trainable_parts(policy, list(MEDIA_PARTS))
    assert set(counts) == set(MEDIA_PARTS) and all(count > 0 for count in counts.values())
    samples = read_samples(tiny_dataset)[:2]
    loader = ClipLoader(num_frames=policy.num_frames, prompt="train")
    batch = policy.prepare([loader.load(sample) for sample in samples])
    ids, mask = policy.encode_completions([target_text(sample, "reasoning") for sample in samples])
    logp = policy.token_logprobs(batch, ids, torch.arange(2))                      # (B, C)
    (-(logp * mask).sum() / mask.sum()).backward()
    names = {id(param): name for name, param in policy.thinker.named_parameters()}
    for part in MEDIA_PARTS:
        for module in policy.parts()[part]:
            for param in module.parameters():
                name = names[id(param)]
                assert param.requires_grad, name
                if name in UNUSED_BY_THE_THINKER:
                    assert param.grad is None
                    continue
                assert param.grad is not None and bool(param.grad.abs().sum() > 0), f"{part}: {name} got no gradient"
    # The LLM is frozen here: no gradient is kept for it.
    assert all(param.grad is None for module in policy.parts()["llm"] for param in module.parameters())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"target": "reasons"},
     r"target must be one of \('reasoning', 'label', 'description', 'instruction'\), got 'reasons'"),
    ({"epochs": 0.0}, r"set epochs > 0 or max_steps"),
    ({"clips_per_step": 0}, r"clips_per_step and gradient_accumulation_steps must be >= 1"),
    ({"gradient_accumulation_steps": 0}, r"clips_per_step and gradient_accumulation_steps must be >= 1"),
    ({"max_steps": -5}, r"max_steps must be >= 1, got -5; leave it unset to train for `epochs` instead"),
    ({"max_steps": 0}, r"max_steps must be >= 1, got 0"),
    ({"save_every": -1}, r"save_every must be >= 0 \(0 saves only the final model\), got -1"),
    ({"log_every": 0}, r"log_every must be >= 1 \(1 logs every step\), got 0"),
    ({"sample_every": -2}, r"sample_every must be >= 0 \(0 logs no samples\), got -2"),
    ({"snapshot_steps": [5, -1]}, r"snapshot_steps must be steps >= 1, got \[5, -1\]"),
])
def test_bad_sft_config_is_rejected_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        SFTConfig(model=f"preset:{PRESET}", data="train.jsonl", output_dir="out", **overrides)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"lr": 0.0}, r"lr must be a positive finite number, got 0.0"),
    ({"lr": float("inf")}, r"lr must be a positive finite number, got inf"),     # D18: NonFiniteError at step 1
    ({"max_grad_norm": float("nan")}, r"max_grad_norm must be a finite number >= 0, got nan"),
    ({"lr_multipliers": {"llm": float("inf")}}, r"lr_multipliers must be finite and > 0"),
    ({"schedule": "cos"}, r"schedule must be cosine, linear or constant, got 'cos'"),
    ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
])
def test_bad_optim_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        OptimConfig(**overrides)


def test_unknown_or_missing_parts_are_rejected():
    policy = init_preset(PRESET, seed=0)
    with pytest.raises(ValueError, match=r"unknown model part\(s\) \['vision'\]; parts are \['llm', "):
        set_trainable_parts(policy, ["llm", "vision"])
    with pytest.raises(ValueError, match=r"the qwen2_5_omni model has no part\(s\) \['gate'\]"):
        set_trainable_parts(policy, ["gate"])


def test_logged_lr_is_the_lr_of_the_step(tiny_dataset, tmp_path):
    config = sft_config(tiny_dataset, tmp_path, max_steps=2, optim=OptimConfig(lr=3e-3, schedule="linear",
                                                                               warmup_ratio=0.0))
    train_sft(config)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # Linear decay over 2 steps without warm-up: step 1 updates at the peak, step 2 at half of it.
    assert [row["lr"] for row in rows] == pytest.approx([3e-3, 1.5e-3])


def test_a_media_norm_trains_with_its_projectors_and_is_saved(tiny_dataset, tmp_path):
    """The option of issue #26 (``ThinkerDims.media_norm``): its LayerNorms belong to the projector parts, so
    SFT that trains the projectors moves them, SFT that trains the LLM only leaves them, and both save them."""
    start = tmp_path / "start"
    init_preset(PRESET, seed=0, media_norm=True).save(start)
    initial = load_policy(start).media_norm.state_dict()
    moved = train_sft(sft_config(tiny_dataset, tmp_path / "projectors", model=str(start),
                                 trainable=["vision_projector", "audio_projector"]))
    kept = train_sft(sft_config(tiny_dataset, tmp_path / "llm", model=str(start), trainable=["llm"]))
    trained, frozen = (load_policy(r.final_model).media_norm.state_dict() for r in (moved, kept))
    assert all(not torch.equal(trained[k], initial[k]) for k in ("video.weight", "audio.weight"))
    assert all(torch.equal(frozen[k], initial[k]) for k in initial)
