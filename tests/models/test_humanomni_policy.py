"""HumanOmniPolicy on the tiny preset: batching, generation, log-probs, gradients, save / load, presets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import GenerationConfig

from r1omni.models.humanomni import PRESETS, HumanOmniForCausalLM, HumanOmniPolicy, load_policy
from r1omni.models.humanomni.presets import humanomni_tiny, r1_omni_0p5b_config
from r1omni.models.policy import MODEL_PARTS, ClipInput, Policy, SamplingConfig
from r1omni.template import PROMPTS

ATOL = 1e-4


def _liven(policy: HumanOmniPolicy) -> HumanOmniPolicy:
    """Re-draw the LLM and projector weights at the fixture's scales (matrices N(0, 1/fan_in), embeddings
    N(0, 0.5), MLP x8) so that greedy choices depend on the clip: with the default 0.02 init the random
    model decodes the same token whatever it sees."""
    torch.manual_seed(0)
    inner = policy.model.model
    with torch.no_grad():
        inner.embed_tokens.weight.normal_(0.0, 0.5)
        for part in (inner.layers, inner.mm_projector, inner.audio_projector, inner.bert_gate):
            for module in part.modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)):
                    module.weight.normal_(0.0, module.weight[0].numel() ** -0.5)
        for layer in inner.layers:
            layer.mlp.up_proj.weight.mul_(8.0)
            layer.mlp.down_proj.weight.mul_(8.0)
    return policy


@pytest.fixture(scope="module")
def policy() -> HumanOmniPolicy:
    return _liven(humanomni_tiny(seed=0))


def _clips() -> list[ClipInput]:
    rng = np.random.default_rng(1)
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(24000) / 16000)).astype(np.float32)
    return [
        ClipInput(PROMPTS["inference"], rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8), tone),
        ClipInput("Which emotion?", rng.integers(0, 256, (8, 40, 30, 3), dtype=np.uint8), None),
        ClipInput("How does the voice sound?", None, rng.standard_normal(16000).astype(np.float32) * 0.1),
    ]


def _plain_logprobs(policy, batch, completion_ids):
    """Reference: each clip alone, a plain forward over prompt + completion, log-softmax at the completion."""
    rows = []
    for row, ids in enumerate(completion_ids):
        single = policy.prepare([_clips()[row]])
        full = torch.cat([single.input_ids[0], ids])[None]
        with torch.no_grad():
            logits = policy.model(input_ids=full, **single.media).logits[0]                # (M, X)
        logprobs = logits[-len(ids) - 1:-1].log_softmax(-1)                               # (C, X)
        rows.append(logprobs.gather(-1, ids[:, None]).squeeze(-1))
    return torch.stack(rows)


def test_is_a_policy(policy):
    assert isinstance(policy, Policy)
    assert policy.family == "humanomni"


def test_prepare_layout(policy):
    batch = policy.prepare(_clips())
    assert batch.num_clips == 3
    assert batch.media["pixel_values"].shape == (2, 8, 3, 32, 32)
    assert batch.media["input_features"].shape == (2, 128, 3000)
    assert batch.media["bert_input_ids"].shape[0] == 3
    assert "<vi_start><video><vi_end>\n<au_start><audio><au_end>\n" in batch.prompts[0]
    assert "<audio>" not in batch.prompts[1] and "<video>" not in batch.prompts[2]
    sentinels = [(row < 0).sum().item() for row in batch.input_ids]
    assert sentinels == [2, 1, 1]
    # Left padding: every row ends with the generation prompt.
    assert (batch.attention_mask[:, -1] == 1).all() and (batch.attention_mask[:, 0] == 0).any()
    only_audio = policy.prepare(_clips()[2:])
    assert "pixel_values" not in only_audio.media


def test_pad_frame_mode_differs(policy):
    clip = _clips()[1]
    stretch = policy.processor.pixel_values(clip.frames)
    policy.processor.frame_mode = "pad"
    try:
        padded = policy.processor.pixel_values(clip.frames)
    finally:
        policy.processor.frame_mode = "stretch"
    assert stretch.shape == padded.shape == (8, 3, 32, 32)
    # Width 30 < height 40: the pad columns are grey 127 -> (127/255 - 0.5) / 0.5.
    assert torch.allclose(padded[:, :, :, 0], torch.tensor(127 / 255 / 0.5 - 1.0), atol=1e-6)


def test_batch_matches_each_clip_alone(policy):
    clips = _clips()
    batch = policy.prepare(clips)
    sampling = SamplingConfig(max_new_tokens=6)
    together = policy.generate(batch, 1, sampling)
    with torch.no_grad():
        logits = policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **batch.media).logits
    for i, clip in enumerate(clips):
        single = policy.prepare([clip])
        with torch.no_grad():
            alone = policy.model(input_ids=single.input_ids, **single.media).logits[0]     # (M_i, X)
        assert (logits[i, -alone.shape[0]:] - alone).abs().max().item() < ATOL
        assert policy.generate(single, 1, sampling).texts[0] == together.texts[i]
    assert len(set(together.texts)) > 1, "the livened model should answer differently per clip"


def test_mixed_batch_generates_like_each_clip_alone_and_merges_media_once(policy, monkeypatch):
    """Clips of different lengths and modalities in one batch: greedy tokens equal each clip alone, and
    media are merged once per generate call (the prefill), never again while decoding, whichever name
    transformers gives the KV cache."""
    rng = np.random.default_rng(2)
    clips = [
        ClipInput(PROMPTS["inference"], rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8),
                  rng.standard_normal(40000).astype(np.float32) * 0.1),                          # 2.5 s, both
        ClipInput("Which emotion does this face show?", rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
                  None),                                                                         # video only
        ClipInput("Voice?", None, rng.standard_normal(8000).astype(np.float32) * 0.1),           # 0.5 s, audio only
    ]
    merges = []
    merge = HumanOmniForCausalLM.prepare_multimodal_inputs
    monkeypatch.setattr(HumanOmniForCausalLM, "prepare_multimodal_inputs",
                        lambda self, *a, **k: merges.append(1) or merge(self, *a, **k))
    sampling = SamplingConfig(max_new_tokens=16)
    together = policy.generate(policy.prepare(clips), 1, sampling)
    assert len(merges) == 1
    for i, clip in enumerate(clips):
        alone = policy.generate(policy.prepare([clip]), 1, sampling)
        length = int(alone.mask[0].sum())
        assert together.ids[i, :length].tolist() == alone.ids[0, :length].tolist()
        assert together.texts[i] == alone.texts[0]
    assert len(merges) == 1 + len(clips)


def test_generate_sampling_rows_and_masks(policy):
    batch = policy.prepare(_clips()[:2])
    torch.manual_seed(0)
    out = policy.generate(batch, 4, SamplingConfig(max_new_tokens=12, do_sample=True, temperature=1.0))
    assert out.ids.shape[0] == out.mask.shape[0] == len(out.texts) == 8
    assert out.clip_index.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    stop = set(policy.stop_token_ids)
    for ids, mask in zip(out.ids.tolist(), out.mask.tolist()):
        length = sum(mask)
        assert mask == [1] * length + [0] * (len(mask) - length)
        stops = [j for j, token in enumerate(ids) if token in stop]
        assert length == (stops[0] + 1 if stops and stops[0] < length else len(ids))
        assert all(token == policy.tokenizer.pad_token_id for token in ids[length:])


def _transformers_generate(policy, batch, sampling):
    """transformers' own greedy generate on the merged embeddings (a growing cache, its logits
    processors): new ids (B, C') and each step's raw logits (C' of (B, X))."""
    with torch.no_grad():
        merged = policy.model.prepare_multimodal_inputs(batch.input_ids, batch.attention_mask, **batch.media)
        out = policy.model.generate(
            inputs_embeds=merged.inputs_embeds, attention_mask=merged.attention_mask,
            generation_config=GenerationConfig(
                max_new_tokens=sampling.max_new_tokens, do_sample=False,
                repetition_penalty=sampling.repetition_penalty, eos_token_id=policy.stop_token_ids,
                pad_token_id=policy.tokenizer.pad_token_id, use_cache=True, return_dict_in_generate=True,
                output_logits=True))
    return out.sequences, out.logits


def test_greedy_generate_matches_transformers_generate(policy):
    """r1omni's loop (prefill once, Qwen2Step on a pre-sized cache) against transformers' generate on the
    merged embeddings: the same tokens, and the same log-probabilities as its per-step logits give."""
    batch = policy.prepare(_clips())
    sampling = SamplingConfig(max_new_tokens=12, logprobs=True)
    ours = policy.generate(batch, 2, sampling)
    ids, logits = _transformers_generate(policy, batch, sampling)                              # (B, C)
    assert torch.equal(ours.ids[::2], ours.ids[1::2]) and ours.ids.shape[1] == ids.shape[1]
    mask = ours.mask[::2]                                                                      # (B, C)
    assert torch.equal(ours.ids[::2], ids.masked_fill(mask == 0, policy.tokenizer.pad_token_id))
    expected = torch.stack(logits, dim=1).float().log_softmax(-1).gather(-1, ids[..., None])[..., 0]  # (B, C)
    assert torch.allclose(ours.logprobs[::2], expected * mask, atol=ATOL)


def test_generate_returns_logprobs_only_when_asked(policy):
    """Asked for, each new token's log-probability under the untempered model comes back (zero after the
    stop), equal to a plain forward over prompt + completion; not asked, none (GRPO scores again)."""
    batch = policy.prepare(_clips())
    plain = policy.generate(batch, 2, SamplingConfig(max_new_tokens=12))
    out = policy.generate(batch, 2, SamplingConfig(max_new_tokens=12, logprobs=True))
    assert plain.logprobs is None and torch.equal(plain.ids, out.ids)
    assert out.logprobs is not None and out.logprobs.shape == out.ids.shape
    assert (out.logprobs[out.mask == 1] < 0).all() and (out.logprobs[out.mask == 0] == 0).all()
    reference = _plain_logprobs(policy, batch, out.ids[::2])
    assert torch.allclose(out.logprobs[::2], reference * out.mask[::2], atol=ATOL)
    torch.manual_seed(0)
    sampled = policy.generate(batch, 2, SamplingConfig(max_new_tokens=12, do_sample=True, logprobs=True))
    with torch.no_grad():
        scored = policy.token_logprobs(batch, sampled.ids, sampled.clip_index)                # (N, C)
    assert torch.allclose(sampled.logprobs, scored * sampled.mask, atol=ATOL)


def test_generate_decodes_in_eval_mode_and_leaves_every_mode_as_found(policy):
    """generate owns its mode (the protocol): a caller in train mode gets the eval-mode answer, and its
    modules (a frozen tower kept in eval mode among them) keep the modes they had."""
    batch = policy.prepare(_clips()[:2])
    sampling = SamplingConfig(max_new_tokens=8, logprobs=True)
    expected = policy.generate(batch, 1, sampling)
    policy.module.train()
    policy.model.model.vision_tower.eval()
    try:
        modes = [module.training for module in policy.module.modules()]
        got = policy.generate(batch, 1, sampling)
        assert [module.training for module in policy.module.modules()] == modes
    finally:
        policy.module.eval()
    assert torch.equal(got.ids, expected.ids) and torch.equal(got.logprobs, expected.logprobs)


def test_the_module_step_and_qwen2_step_decode_alike(policy):
    """The family's two steppers (Qwen2Step, and the model's own forward on the same pre-sized cache)."""
    batch = policy.prepare(_clips()).to(policy.device)
    sampling = SamplingConfig(max_new_tokens=12, logprobs=True)
    lean = policy.generate(batch, 2, sampling)
    module_step = policy.stepper
    policy.stepper = lambda *args: module_step(*args, lean=False)
    try:
        forward = policy.generate(batch, 2, sampling)
    finally:
        del policy.stepper
    assert torch.equal(lean.ids, forward.ids) and torch.allclose(lean.logprobs, forward.logprobs, atol=1e-5)


def test_repetition_penalty_reads_the_new_tokens_of_every_row_alike(policy):
    """The penalty sees each row's new tokens (the prompt exists only as embeddings), whatever the batch.
    transformers' generate (5.25) on left-padded embeddings skips the penalty for a padded row's first
    (padding length) new tokens, so it agrees only for a clip decoded alone."""
    sampling = SamplingConfig(max_new_tokens=12, repetition_penalty=1.3)
    together = policy.generate(policy.prepare(_clips()), 1, sampling)
    for row, clip in enumerate(_clips()):
        single = policy.prepare([clip])
        alone = policy.generate(single, 1, sampling)
        # transformers says so itself: the penalty reads only the new tokens when the prompt is embeddings
        with pytest.warns(UserWarning, match="only to newly generated tokens"):
            ids, _ = _transformers_generate(policy, single, sampling)
        assert alone.ids[0, :ids.shape[1]].tolist() == ids[0].masked_fill(alone.mask[0, :ids.shape[1]] == 0,
                                                                          policy.tokenizer.pad_token_id).tolist(), row
        width = int(together.mask[row].sum())
        assert together.ids[row, :width].tolist() == alone.ids[0, :width].tolist(), row


def test_token_logprobs_match_plain_forward(policy):
    batch = policy.prepare(_clips())
    out = policy.generate(batch, 1, SamplingConfig(max_new_tokens=6))
    with torch.no_grad():
        logprobs = policy.token_logprobs(batch, out.ids, out.clip_index)                  # (N, C)
    reference = _plain_logprobs(policy, batch, out.ids)
    assert logprobs.shape == out.ids.shape
    assert (logprobs - reference).abs().max().item() < ATOL


def test_token_logprobs_shares_media_across_rows(policy):
    """Rows of the same clip reuse its media: SigLIP / Whisper run once per clip, not per row."""
    batch = policy.prepare(_clips()[:2])
    ids, _ = policy.encode_completions(["<think>calm</think>\n<answer>happy</answer>", "sad", "angry", "x"])
    calls = []
    hook = policy.model.model.vision_tower.register_forward_hook(lambda m, a, o: calls.append(o.shape[0]))
    try:
        with torch.no_grad():
            shared = policy.token_logprobs(batch, ids, torch.tensor([0, 0, 1, 1]))
    finally:
        hook.remove()
    assert calls == [16]                       # 2 videos x 8 frames, once
    with torch.no_grad():
        alone = policy.token_logprobs(policy.prepare(_clips()[1:2]), ids[2:], torch.tensor([0, 0]))
    assert (shared[2:] - alone).abs().max().item() < ATOL


def test_encode_completions(policy):
    ids, mask = policy.encode_completions(["<answer>happy</answer>", "sad"])
    eot = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    lengths = mask.sum(1).tolist()
    assert [ids[i, n - 1].item() for i, n in enumerate(lengths)] == [eot, eot]
    assert policy.tokenizer.decode(ids[1, :lengths[1]], skip_special_tokens=True) == "sad"


def test_backward_reaches_trainable_parts():
    policy = humanomni_tiny(seed=0)
    policy.module.train()
    batch = policy.prepare(_clips()[:2])
    ids, mask = policy.encode_completions(["<answer>happy</answer>", "sad"])
    logprobs = policy.token_logprobs(batch, ids, torch.tensor([0, 1]))
    (-(logprobs * mask).sum() / mask.sum()).backward()
    parts = policy.parts()

    def has_grad(name):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for m in parts[name] for p in m.parameters())

    for name in ("llm", "vision_projector", "audio_projector", "gate", "gate_text_encoder"):
        assert has_grad(name), name
    for name in ("vision_tower", "audio_tower"):          # frozen, as the official loader leaves them
        assert all(p.grad is None for m in parts[name] for p in m.parameters()), name
    trainable = {id(p) for p in policy.module.parameters() if p.requires_grad}
    with_grad = {id(p) for p in policy.module.parameters() if p.grad is not None}
    assert trainable == with_grad, "every trainable parameter takes part in the forward (DDP needs this)"


def test_parts_cover_the_model(policy):
    parts = policy.parts()
    assert set(parts) == set(MODEL_PARTS)
    owners = {}
    for name, modules in parts.items():
        for module in modules:
            for p in module.parameters():
                assert owners.setdefault(id(p), name) == name, f"parameter in {owners[id(p)]} and {name}"
    unused = {id(p) for m in policy.model.unused_modules() for p in m.parameters()}
    assert set(owners) | unused == {id(p) for p in policy.module.parameters()}


def test_token_logprobs_through_ddp(tmp_path):
    """``token_logprobs`` calls only ``self.module(...)``, so a DDP-wrapped module works and syncs gradients."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    policy = humanomni_tiny(seed=0)
    batch = policy.prepare(_clips()[:2])
    ids, mask = policy.encode_completions(["happy", "<answer>sad</answer>"])
    clip_index = torch.tensor([0, 1])
    with torch.no_grad():
        expected = policy.token_logprobs(batch, ids, clip_index)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        policy.module = DistributedDataParallel(policy.module)
        logprobs = policy.token_logprobs(batch, ids, clip_index)
        (-(logprobs * mask).sum()).backward()
        assert (logprobs.detach() - expected).abs().max().item() < ATOL
        assert policy.model.model.bert_gate[0].weight.grad is not None
        assert policy.generate(batch, 2, SamplingConfig(max_new_tokens=3, do_sample=True)).ids.shape[0] == 4
    finally:
        dist.destroy_process_group()


def test_save_load_roundtrip(policy, tmp_path):
    policy.save(tmp_path / "ckpt")
    folder = tmp_path / "ckpt"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "HumanOmni_qwen2"
    assert (config["mm_vision_tower"], config["mm_audio_tower"]) == ("siglip", "whisper")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json",
                 "generation_config.json", "siglip/config.json", "siglip/preprocessor_config.json",
                 "whisper/config.json", "whisper/preprocessor_config.json", "bert/config.json", "bert/vocab.txt"):
        assert (folder / name).is_file(), name
    with safe_open(folder / "model.safetensors", "pt") as handle:
        keys = set(handle.keys())
    assert "lm_head.weight" not in keys and "model.vision_tower.vision_tower.vision_model.head.probe" in keys

    loaded = load_policy(folder)
    clips = _clips()
    batch, batch2 = policy.prepare(clips), loaded.prepare(clips)
    assert torch.equal(batch.input_ids, batch2.input_ids)
    with torch.no_grad():
        a = policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **batch.media).logits
        b = loaded.model(input_ids=batch2.input_ids, attention_mask=batch2.attention_mask, **batch2.media).logits
    assert torch.equal(a, b)
    sampling = SamplingConfig(max_new_tokens=5)
    assert policy.generate(batch, 1, sampling).texts == loaded.generate(batch2, 1, sampling).texts


def test_official_compatible_save_writes_tower_weights(policy, tmp_path):
    policy.save(tmp_path / "ckpt", official_compatible=True)
    with safe_open(tmp_path / "ckpt" / "siglip" / "model.safetensors", "pt") as handle:
        assert all(k.startswith("vision_model.") for k in handle.keys())
    with safe_open(tmp_path / "ckpt" / "whisper" / "model.safetensors", "pt") as handle:
        assert all(k.startswith("encoder.") for k in handle.keys())
    assert (tmp_path / "ckpt" / "bert" / "model.safetensors").is_file()


def test_presets_registry():
    assert set(PRESETS) == {"humanomni-tiny", "r1-omni-0.5b"}
    for builder in PRESETS.values():
        assert builder.__doc__ and len(builder.__doc__.strip().splitlines()) == 1


def test_r1_omni_0p5b_dimensions_on_meta():
    config = r1_omni_0p5b_config()
    with torch.device("meta"):
        model = HumanOmniForCausalLM(config)
    inner = model.model

    def millions(module):
        return sum(p.numel() for p in module.parameters()) / 1e6

    llm = sum(p.numel() for n, p in inner.named_parameters() if n.startswith(("embed_tokens", "layers", "norm")))
    assert round(llm / 1e6, 1) == 494.0
    assert round(millions(inner.vision_tower), 1) == 92.9
    # Spec's 637.3 M includes WhisperForAudioClassification's unused projector / classifier (0.33 M).
    assert round(millions(inner.audio_tower), 1) == 637.0
    assert round(millions(inner.mm_projector), 1) == 34.8
    assert round(millions(inner.audio_projector), 2) == 1.95
    assert round(millions(inner.bert_model), 1) == 109.5
    assert round(millions(inner.bert_gate), 2) == 2.77
    assert inner.bert_gate[0].weight.shape == (3584, 768)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == 1.37


def test_generic_loader_dispatches_here(fixture_dir):
    import r1omni.models

    assert isinstance(r1omni.models.load_policy(fixture_dir), HumanOmniPolicy)


@pytest.mark.parametrize("change, message", [
    (lambda media: media.update(pixel_values=media["pixel_values"][:1]), "one per <video>"),
    (lambda media: media.pop("input_features"), "no input_features"),
    (lambda media: media.pop("bert_input_ids"), "gate text"),
])
def test_merge_rejects_mismatched_media(policy, change, message):
    batch = policy.prepare(_clips())
    media = dict(batch.media)
    change(media)
    with pytest.raises(ValueError, match=message):
        policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **media)


def test_tiny_preset_frame_count_override():
    policy = PRESETS["humanomni-tiny"](seed=0, num_frames=4)
    assert policy.num_frames == 4
    rng = np.random.default_rng(0)
    batch = policy.prepare([ClipInput("Which emotion?", rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))])
    with torch.no_grad():
        out = policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **batch.media)
    assert out.attention_mask.shape[1] == batch.input_ids.shape[1] - 1 + 4 * 2 * 2
