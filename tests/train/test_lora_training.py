"""LoRA training (``lora:`` in the configs) on the tiny Qwen2.5-Omni preset: GRPO trains the adapters and
leaves the base weights as they were, the reference is the base (adapters off), its rollouts' log-probs are
the trainer's scoring of the same tokens, and the saved model reloads with its adapters (or merged, with
``lora.merge``); gradient checkpointing changes no number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1omni.clips import ClipLoader
from r1omni.models import SamplingConfig, init_preset, load_policy
from r1omni.models.lora import ADAPTER_CONFIG, LoraSettings, adapter_layers
from r1omni.schema import read_samples
from r1omni.train.grpo import GRPOConfig, train_grpo
from r1omni.train.setup import AdaptersOff, OptimConfig
from r1omni.train.sft import SFTConfig, train_sft
from r1omni.train.vllm_engine import VLLMOptions

pytest.importorskip("peft")

PRESET = "qwen2.5-omni-tiny"
LORA = LoraSettings(r=4, alpha=8, dropout=0.0)


def letter_e_share(completions, **columns) -> list[float]:
    return [text.count("e") / max(len(text), 1) for text in completions]


def grpo_config(data: Path, output_dir: Path, **overrides) -> GRPOConfig:
    settings = dict(model=f"preset:{PRESET}", data=str(data), output_dir=str(output_dir), max_steps=3,
                    num_generations=4, clips_per_step=2, gradient_accumulation_steps=1, beta=0.04, seed=0,
                    rewards={"letter_e": 1.0}, sampling=SamplingConfig(max_new_tokens=8, do_sample=True),
                    optim=OptimConfig(lr=2e-2, schedule="constant", warmup_ratio=0.0), num_threads=1, lora=LORA)
    settings.update(overrides)
    return GRPOConfig(**settings)


def test_lora_grpo_trains_the_adapters_only_and_rolls_out_what_it_scores(tiny_dataset, tmp_path, monkeypatch):
    policy = init_preset(PRESET, seed=0)
    base = {name: p.detach().clone() for name, p in policy.module.named_parameters()}
    references = []
    original = AdaptersOff.token_logprobs

    def record(self, *args):
        references.append(self)
        return original(self, *args)

    monkeypatch.setattr(AdaptersOff, "token_logprobs", record)
    result = train_grpo(grpo_config(tiny_dataset, tmp_path), reward_functions={"letter_e": letter_e_share},
                        policy=policy)
    assert references and references[0].policy is policy   # the KL is taken against the base: adapters off
    trained = dict(policy.module.named_parameters())
    adapters = {name: p for name, p in trained.items() if ".lora_" in name}
    assert adapters and all(not p.requires_grad for name, p in trained.items()
                            if name.startswith("thinker.model.language_model") and ".lora_" not in name)
    assert any(".lora_B." in name and p.abs().max() > 0 for name, p in adapters.items())   # B starts at zero
    for name, before in base.items():
        # a base weight lives at ``...q_proj.base_layer.weight`` once its map has an adapter
        owner, leaf = name.rsplit(".", 1)
        after = trained.get(name, trained.get(f"{owner}.base_layer.{leaf}"))
        if name.startswith("thinker.model.language_model"):
            assert torch.equal(after, before), name
    # the trained policy samples with its adapters: rollout log-probs are the trainer's scoring
    policy.module.eval()
    loader = ClipLoader.for_policy(policy, prompt="train")
    batch = policy.prepare([loader.load(sample) for sample in read_samples(tiny_dataset)[:2]])
    torch.manual_seed(0)
    out = policy.generate(batch, 4, SamplingConfig(max_new_tokens=8, do_sample=True, logprobs=True))
    with torch.no_grad():
        scored = policy.token_logprobs(batch, out.ids, out.clip_index) * out.mask
    assert torch.allclose(out.logprobs, scored, atol=1e-4)
    # the final model holds base + adapters and loads back as the trained policy
    assert (result.final_model / ADAPTER_CONFIG).is_file()
    loaded = load_policy(result.final_model)
    assert adapter_layers(loaded.module)
    mine, theirs = policy.module.state_dict(), loaded.module.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_lora_sft_saves_merged_weights_when_asked(tiny_dataset, tmp_path):
    config = SFTConfig(model=f"preset:{PRESET}", data=str(tiny_dataset), output_dir=str(tmp_path), max_steps=2,
                       clips_per_step=2, seed=0, optim=OptimConfig(lr=3e-3, schedule="constant", warmup_ratio=0.0),
                       num_threads=1, lora=LoraSettings(r=4, alpha=8, dropout=0.0, merge=True))
    result = train_sft(config)
    assert not (result.final_model / ADAPTER_CONFIG).exists()
    merged = load_policy(result.final_model)
    assert not adapter_layers(merged.module)
    base = init_preset(PRESET, seed=0)
    name = "thinker.model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(merged.module.named_parameters())[name], dict(base.module.named_parameters())[name])


def test_a_folder_with_adapters_is_refused_as_a_starting_point(tiny_dataset, tmp_path):
    from r1omni.models.lora import add_adapters, save_policy

    policy = init_preset(PRESET, seed=0)
    add_adapters(policy, LORA)
    save_policy(policy, tmp_path / "adapted")
    with pytest.raises(ValueError, match="holds LoRA adapters"):
        train_sft(SFTConfig(model=str(tmp_path / "adapted"), data=str(tiny_dataset), output_dir=str(tmp_path / "o"),
                            max_steps=1, num_threads=1))


def test_gradient_checkpointing_changes_no_number(tiny_dataset, tmp_path):
    rows = {}
    for checkpointing in (False, True):
        out = tmp_path / str(checkpointing)
        config = SFTConfig(model=f"preset:{PRESET}", data=str(tiny_dataset), output_dir=str(out), max_steps=2,
                           clips_per_step=2, seed=0, num_threads=1, gradient_checkpointing=checkpointing,
                           optim=OptimConfig(lr=3e-3, schedule="constant", warmup_ratio=0.0))
        policy = init_preset(PRESET, seed=0)
        train_sft(config, policy=policy)
        layers = [m for m in policy.module.modules() if type(m).__name__.endswith("DecoderLayer")]
        assert layers and all(layer.gradient_checkpointing == checkpointing for layer in layers)
        rows[checkpointing] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for plain, recomputed in zip(rows[False], rows[True]):
        assert plain["loss"] == pytest.approx(recomputed["loss"], rel=1e-5)
        assert plain["grad_norm"] == pytest.approx(recomputed["grad_norm"], rel=1e-4)


def test_vllm_rollouts_are_refused_with_lora():
    with pytest.raises(ValueError, match="rollout_engine=vllm"):
        grpo_config(Path("x"), Path("y"), rollout_engine="vllm", vllm=VLLMOptions(model="m"))
