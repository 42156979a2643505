"""LoRA adapters (``r1omni.models.lora``) on the tiny presets of both families whose decoding runs through
``Qwen2Step``: the fast step decodes with the adapters (its sampled log-probabilities equal the policy's
scoring of the same tokens), switched off it decodes the base; saved adapters load back and answer alike;
a merged save is base + adapter; what the step cannot read is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r1omni.models import ClipInput, SamplingConfig, init_preset, load_policy
from r1omni.models.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LoraSettings,
    adapter_layers,
    adapters_disabled,
    add_adapters,
    effective_linear,
    save_policy,
)

pytest.importorskip("peft")

PRESETS = ["qwen2.5-omni-tiny", "humanomni-tiny"]
ATOL = 1e-4


def adapted(name: str, seed: int = 0):
    """A tiny preset with r=4 adapters whose ``lora_B`` is drawn at random (peft starts it at zero, which
    would leave the model as its base); in eval mode."""
    policy = init_preset(name, seed=seed)
    add_adapters(policy, LoraSettings(r=4, alpha=8, dropout=0.0))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter_name, parameter in policy.module.named_parameters():
            if ".lora_B." in parameter_name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    policy.module.eval()
    return policy


def clips(policy) -> list[ClipInput]:
    rng = np.random.default_rng(0)
    side = 56
    frames = rng.integers(0, 256, (policy.num_frames, side, side, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    return [ClipInput("Which emotion is the most obvious?", frames=frames, waveform=audio),
            ClipInput("Emotion?", waveform=audio[:12000])]


def sampled_and_scored(policy, batch):
    torch.manual_seed(0)
    out = policy.generate(batch, num_return_sequences=2,
                          sampling=SamplingConfig(max_new_tokens=10, do_sample=True, logprobs=True))
    with torch.no_grad():
        scored = policy.token_logprobs(batch, out.ids, out.clip_index)                   # (N, C)
    return out, scored * out.mask


@pytest.fixture(scope="module", params=PRESETS)
def policy(request):
    return adapted(request.param)


def test_only_the_language_models_linear_maps_get_adapters(policy):
    names = [name for name, _ in adapter_layers(policy.module)]
    llm = {id(m) for part in policy.parts()["llm"] for m in part.modules()}
    assert names and all(id(layer) in llm for _, layer in adapter_layers(policy.module))
    assert {name.rsplit(".", 1)[-1] for name in names} == set(LoraSettings().target_modules)


def test_rollout_logprobs_equal_scoring_with_the_adapters(policy):
    """The acceptance check for the fast step: it would decode the base model if it read ``q_proj.weight``
    (peft's frozen base weight) and its log-probabilities would then disagree with the trainer's scoring."""
    batch = policy.prepare(clips(policy))
    out, scored = sampled_and_scored(policy, batch)
    with torch.no_grad(), adapters_disabled(policy.module):
        base = policy.token_logprobs(batch, out.ids, out.clip_index) * out.mask
    assert (scored - base).abs().max() > 100 * ATOL   # the adapters change what the model says
    assert torch.allclose(out.logprobs, scored, atol=ATOL)


def test_adapters_switched_off_decode_the_base_model(policy):
    batch = policy.prepare(clips(policy))
    with adapters_disabled(policy.module):
        out, scored = sampled_and_scored(policy, batch)
    assert torch.allclose(out.logprobs, scored, atol=ATOL)
    assert all(not layer.disable_adapters for _, layer in adapter_layers(policy.module))   # restored


def test_saved_adapters_load_back_and_predict_the_same_text(policy, tmp_path):
    save_policy(policy, tmp_path / "adapted")
    assert (tmp_path / "adapted" / ADAPTER_CONFIG).is_file() and (tmp_path / "adapted" / ADAPTER_WEIGHTS).is_file()
    loaded = load_policy(tmp_path / "adapted")
    loaded.module.eval()
    mine, theirs = policy.module.state_dict(), loaded.module.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    batch = policy.prepare(clips(policy))
    greedy = SamplingConfig(max_new_tokens=10)
    assert loaded.generate(batch, 1, greedy).texts == policy.generate(batch, 1, greedy).texts


def test_a_merged_save_is_base_plus_adapter_and_leaves_the_policy_as_it_was(policy, tmp_path):
    before = {k: v.clone() for k, v in policy.module.state_dict().items()}
    save_policy(policy, tmp_path / "merged", merge=True)
    assert not (tmp_path / "merged" / ADAPTER_CONFIG).exists()
    after = policy.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and adapter_layers(policy.module)
    merged = load_policy(tmp_path / "merged")
    merged.module.eval()
    assert not adapter_layers(merged.module)
    weights = dict(merged.module.named_parameters())
    for name, layer in adapter_layers(policy.module):
        base = layer.get_base_layer().weight
        delta = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * layer.scaling["default"]
        assert torch.allclose(weights[f"{name}.weight"], base + delta, atol=1e-6)
        assert torch.allclose(weights[f"{name}.weight"], effective_linear(layer)[0], atol=1e-6)
    batch = policy.prepare(clips(policy))
    out, scored = sampled_and_scored(policy, batch)
    with torch.no_grad():
        merged_scored = merged.token_logprobs(batch, out.ids, out.clip_index) * out.mask
    assert torch.allclose(merged_scored, scored, atol=ATOL)


def test_adapters_the_step_cannot_read_are_refused():
    from peft import LoraConfig, inject_adapter_in_model

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    inject_adapter_in_model(LoraConfig(r=2, target_modules=["0"], use_dora=True), model)
    with pytest.raises(ValueError, match="DoRA"):
        effective_linear(model[0])


def test_a_target_that_matches_nothing_is_named():
    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    with pytest.raises(ValueError, match=r"\['qproj'\] match no linear map"):
        add_adapters(policy, LoraSettings(target_modules=["qproj", "v_proj"]))


@pytest.mark.parametrize("field, value", [("r", 0), ("alpha", 0.0), ("dropout", 1.0), ("target_modules", [])])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=f"lora.{field}"):
        LoraSettings(**{field: value})
