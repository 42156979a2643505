"""The vLLM rollout engine (``r1omni.train.vllm_engine``).

vLLM needs a CUDA GPU, so most tests put a stand-in ``vllm`` module in ``sys.modules``: it records
what the engine sends (weights, requests, sampling parameters) and answers with scripted
completions, which checks r1omni's side of the contract (weight names, media, the conversion of
vLLM's outputs into ``Completions`` and sampler log-probs, the GRPO loop's importance weights).
``test_real_vllm_rollout`` runs the real thing where a GPU, vLLM and a local Qwen2.5-Omni folder
are available (set ``R1OMNI_VLLM_MODEL`` to that folder and ``R1OMNI_VLLM_POLICY`` to its thinker
saved by r1omni); it is skipped otherwise.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from r1omni.models import ClipInput, SamplingConfig, init_preset
from r1omni.train.grpo import GRPOConfig, train_grpo
from r1omni.train.setup import OptimConfig
from r1omni.train.vllm_engine import VLLMEngine, VLLMOptions, vllm_weight_name


def cuda_and_vllm_available() -> bool:
    """Whether the real-vLLM test can run here."""
    if not torch.cuda.is_available():
        return False
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


COMPLETION = "<think>The voice is loud.</think>\n<answer>angry</answer>"
SAMPLER_LOGPROB = -0.5


class _Logprob:
    def __init__(self, value: float) -> None:
        self.logprob = value


class FakeVLLM(types.ModuleType):
    """Just enough of vLLM's offline API, recording every call."""

    def __init__(self, tokenizer) -> None:
        super().__init__("vllm")
        fake = self
        self.llm_kwargs: dict = {}
        self.pushed: dict[str, torch.Tensor] = {}
        self.resets = 0
        self.requests: list = []
        self.params = None
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        text_ids = tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]

        class SamplingParams:
            def __init__(self, **kwargs) -> None:
                self.__dict__.update(kwargs)

        class Model:
            def load_weights(self, weights) -> None:
                for name, tensor in weights:
                    fake.pushed[name] = tensor.clone()

        class LLM:
            def __init__(self, **kwargs) -> None:
                fake.llm_kwargs = kwargs
                runner = types.SimpleNamespace(model=Model())
                self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
                    driver_worker=types.SimpleNamespace(model_runner=runner)))

            def reset_prefix_cache(self) -> None:
                fake.resets += 1

            def generate(self, requests, params, use_tqdm=True):
                fake.requests, fake.params = list(requests), params
                outputs = []
                for _ in requests:
                    completions = []
                    for g in range(params.n):
                        # g % 3: 0 returns <|im_end|>, 1 stops without returning it, 2 hits max_tokens.
                        tokens = [text_ids + [eos], text_ids, text_ids[:-2]][g % 3]
                        completions.append(types.SimpleNamespace(
                            token_ids=tokens, finish_reason="length" if g % 3 == 2 else "stop",
                            logprobs=[{t: _Logprob(SAMPLER_LOGPROB)} for t in tokens]))
                    outputs.append(types.SimpleNamespace(outputs=completions))
                return outputs

        self.SamplingParams, self.LLM = SamplingParams, LLM


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return init_preset("qwen2.5-omni-tiny", seed=0)


@pytest.fixture
def fake_vllm(policy, monkeypatch):
    module = FakeVLLM(policy.tokenizer)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture
def omni_folder(tmp_path) -> Path:
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_5_omni"}')
    return tmp_path


def _clips(count: int = 2) -> list[ClipInput]:
    rng = np.random.default_rng(0)
    return [ClipInput(question=f"clip {i}: which emotion?",
                      frames=rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8),
                      waveform=rng.normal(0, 0.1, 16000).astype(np.float32)) for i in range(count)]


def test_weight_names_follow_the_omni_checkpoint_layout(policy):
    names = [vllm_weight_name(n) for n, _ in policy.module.named_parameters()]
    assert len(set(names)) == len(names)
    prefixes = ("thinker.model.", "thinker.visual.", "thinker.audio_tower.", "thinker.lm_head.")
    assert all(n.startswith(prefixes) for n in names)
    assert any(n.startswith("thinker.visual.") for n in names) and any(n.startswith("thinker.audio_tower.")
                                                                       for n in names)
    assert vllm_weight_name("thinker.model.language_model.layers.0.mlp.up_proj.weight") == \
        "thinker.model.layers.0.mlp.up_proj.weight"
    with pytest.raises(ValueError, match="no Qwen2.5-Omni checkpoint name"):
        vllm_weight_name("thinker.talker.proj.weight")


def test_rollout_pushes_weights_sends_media_and_converts_outputs(policy, fake_vllm, omni_folder):
    engine = VLLMEngine(Accelerator(cpu=True), VLLMOptions(model=str(omni_folder)), seed=3)
    assert fake_vllm.llm_kwargs["logprobs_mode"] == "raw_logprobs"
    assert fake_vllm.llm_kwargs["limit_mm_per_prompt"] == {"image": 0, "video": 1, "audio": 1}
    clips = _clips()
    batch = policy.prepare(clips)
    sampling = SamplingConfig(max_new_tokens=32, do_sample=True, temperature=0.7, top_k=0)
    rollout = engine.generate(policy, batch, 3, sampling, clips=clips)

    # Every parameter went over, with its current values, then the prefix cache was dropped.
    params = dict(policy.module.named_parameters())
    assert set(fake_vllm.pushed) == {vllm_weight_name(n) for n in params}
    for name, tensor in params.items():
        assert torch.equal(fake_vllm.pushed[vllm_weight_name(name)], tensor.detach())
    assert fake_vllm.resets == 1
    # One request per clip: the rendered prompt (single placeholders) and the decoded media.
    assert [r["prompt"] for r in fake_vllm.requests] == batch.prompts
    assert "<|VIDEO|>" in batch.prompts[0] and batch.prompts[0].count("<|VIDEO|>") == 1
    for request, clip in zip(fake_vllm.requests, clips):
        assert request["multi_modal_data"]["video"] is clip.frames
        waveform, rate = request["multi_modal_data"]["audio"]
        assert waveform is clip.waveform and rate == 16000
    p = fake_vllm.params
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert (p.n, p.temperature, p.top_k, p.max_tokens, p.logprobs, p.stop_token_ids) == (3, 0.7, -1, 32, 0, [eos])

    c = rollout.completions
    assert c.clip_index.tolist() == [0, 0, 0, 1, 1, 1]
    full = len(policy.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"])
    # g=0 returned <|im_end|>; g=1 stopped without it (appended, log-prob unknown); g=2 was cut.
    assert c.lengths.tolist() == [full + 1, full + 1, full - 2] * 2
    assert c.texts[:2] == [COMPLETION, COMPLETION] and c.ids[0, full].item() == c.ids[1, full].item() == eos
    sampler = rollout.sampler_logprobs
    assert sampler.shape == c.ids.shape
    assert torch.all(sampler[0, : full + 1] == SAMPLER_LOGPROB)
    assert math.isnan(sampler[1, full].item()) and torch.all(sampler[1, :full] == SAMPLER_LOGPROB)
    assert torch.all(sampler[2, : full - 2] == SAMPLER_LOGPROB) and torch.all(sampler[2, full - 2:] == 0)


def test_engine_errors_say_what_to_do(policy, fake_vllm, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="needs vllm.model"):
        VLLMEngine(Accelerator(cpu=True), VLLMOptions())
    with pytest.raises(FileNotFoundError, match="no config.json"):
        VLLMEngine(Accelerator(cpu=True), VLLMOptions(model=str(tmp_path / "missing")))
    (tmp_path / "config.json").write_text("{}")
    engine = VLLMEngine(Accelerator(cpu=True), VLLMOptions(model=str(tmp_path)))
    batch = policy.prepare(_clips())
    with pytest.raises(ValueError, match="needs the decoded clips"):
        engine.generate(policy, batch, 2, SamplingConfig(do_sample=True))
    normed = init_preset("qwen2.5-omni-tiny", seed=0, media_norm=True)
    with pytest.raises(ValueError, match="MediaNorm"):
        engine.generate(normed, normed.prepare(_clips()), 2, SamplingConfig(do_sample=True), clips=_clips())
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match="pip install vllm"):
        VLLMEngine(Accelerator(cpu=True), VLLMOptions(model=str(tmp_path)))
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        VLLMOptions(model="x", gpu_memory_utilization=1.5)


def test_grpo_runs_with_the_vllm_engine(fake_vllm, tiny_dataset, omni_folder, tmp_path):
    config = GRPOConfig(model="preset:qwen2.5-omni-tiny", data=str(tiny_dataset), output_dir=str(tmp_path / "run"),
                        max_steps=2, num_generations=3, clips_per_step=2, gradient_accumulation_steps=1,
                        beta=0.04, seed=0, sampling=SamplingConfig(max_new_tokens=32, do_sample=True),
                        optim=OptimConfig(lr=1e-3, schedule="constant", warmup_ratio=0.0), num_threads=1,
                        rollout_engine="vllm", vllm=VLLMOptions(model=str(omni_folder)))
    result = train_grpo(config)
    assert result.steps == 2 and fake_vllm.resets == 2   # weights pushed before each rollout
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all(math.isfinite(m["loss"]) for m in metrics)
    # The trainer's log-probs differ from the scripted -0.5, so the capped importance weights are
    # real numbers (NaN sampler entries count as weight 1), not all ones.
    weights = [m["importance_weight"] for m in metrics]
    assert all(0 < w <= 3.0 for w in weights) and any(abs(w - 1) > 1e-3 for w in weights)
    # Two of every three scripted completions are whole; the third was cut by max_tokens.
    assert all(abs(m["format"] - 2 / 3) < 1e-6 for m in metrics)


@pytest.mark.gpu
@pytest.mark.skipif(not (cuda_and_vllm_available() and os.environ.get("R1OMNI_VLLM_MODEL")
                         and os.environ.get("R1OMNI_VLLM_POLICY")),
                    reason="needs a CUDA GPU, vLLM, R1OMNI_VLLM_MODEL (a full Qwen2.5-Omni folder) and "
                           "R1OMNI_VLLM_POLICY (its thinker saved by r1omni)")
def test_real_vllm_rollout():
    from r1omni.models import load_policy

    policy = load_policy(os.environ["R1OMNI_VLLM_POLICY"])
    policy.module.to("cuda").eval()
    engine = VLLMEngine(Accelerator(), VLLMOptions(model=os.environ["R1OMNI_VLLM_MODEL"], enforce_eager=True))
    clips = _clips()
    batch = policy.prepare(clips).to("cuda")
    rollout = engine.generate(policy, batch, 4, SamplingConfig(max_new_tokens=32, do_sample=True, top_k=0),
                              clips=clips)
    c = rollout.completions
    assert c.ids.shape[0] == 8 and all(isinstance(t, str) for t in c.texts)
    with torch.no_grad():
        trainer = policy.token_logprobs(batch, c.ids.cuda(), c.clip_index.cuda()).float().cpu()
    known = (c.mask == 1) & ~torch.isnan(rollout.sampler_logprobs)
    # Same weights on both sides: the sampler's and the trainer's log-probs of the sampled tokens
    # agree up to kernel and pre-processing differences.
    gap = (trainer - rollout.sampler_logprobs)[known].abs().mean().item()
    assert gap < 0.1, f"mean |trainer - vLLM| log-prob gap {gap:.3f}: weights or media differ"
