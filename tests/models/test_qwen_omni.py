"""Qwen2.5-Omni / Qwen3-Omni thinker policies on tiny random weights: pre-processing against HF,
forward / backward, scoring against the thinker's own per-row forward, generation against HF
``generate``, placeholder suppression, mixed modalities, save / load, presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from transformers import Qwen2VLImageProcessorPil, WhisperFeatureExtractor

from r1omni.models import load_policy as load_any_policy
from r1omni.models.policy import ClipInput, Policy, SamplingConfig
from r1omni.models.qwen_omni import PRESETS, QwenOmniPolicy
from r1omni.models.qwen_omni.presets import PRESET_DIMS, thinker_config
from r1omni.models.qwen_omni.processing import default_settings, patchify, resize_and_normalize
from r1omni.models.tokenizer import QWEN_CHAT_TEMPLATE

TINY = ["qwen2.5-omni-tiny", "qwen3-omni-tiny"]


def sharpen(policy: QwenOmniPolicy, seed: int = 1) -> QwenOmniPolicy:
    """Re-draw the weight matrices with unit-variance fan-in scaling: the default 0.02 init gives near-uniform
    next-token distributions, so greedy decoding would not depend on the input at all."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in policy.thinker.parameters():
            if weight.ndim >= 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 2 / weight.shape[-1] ** 0.5)
    return policy


@pytest.fixture(scope="module", params=TINY)
def policy(request) -> QwenOmniPolicy:
    return sharpen(PRESETS[request.param](seed=0))


def make_clips(size: int, seed: int = 0) -> list[ClipInput]:
    """Both modalities, video only, audio only (different lengths, so prompts get left-padded)."""
    rng = np.random.default_rng(seed)
    frames = lambda: rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)  # noqa: E731
    audio = lambda n: (0.1 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    return [ClipInput("Which emotion is the most obvious?", frames=frames(), waveform=audio(16000)),
            ClipInput("What emotion is shown in the video, and why?", frames=frames()),
            ClipInput("Emotion?", waveform=audio(11000))]


def per_clip_media(batch, clip: int) -> dict[str, torch.Tensor]:
    """The HF thinker's keyword inputs for one clip of a prepared batch."""
    media = {}
    if "video_clip_index" in batch.media:
        (where,) = (batch.media["video_clip_index"] == clip).nonzero(as_tuple=True)
        if len(where):
            v = int(where[0])
            grids = batch.media["video_grid_thw"]
            start = int(grids[:v].prod(dim=1).sum())
            media["pixel_values_videos"] = batch.media["pixel_values_videos"][start:start + int(grids[v].prod())]
            media["video_grid_thw"] = grids[v:v + 1]
            media["video_second_per_grid"] = batch.media["video_second_per_grid"][v:v + 1]
    if "audio_clip_index" in batch.media:
        (where,) = (batch.media["audio_clip_index"] == clip).nonzero(as_tuple=True)
        if len(where):
            a = int(where[0])
            frames = int(batch.media["feature_attention_mask"][a].sum())
            media["input_features"] = batch.media["input_features"][a:a + 1, :, :frames]
            media["feature_attention_mask"] = batch.media["feature_attention_mask"][a:a + 1, :frames]
    return media


# -- pre-processing ----------------------------------------------------------------------------

@pytest.mark.parametrize("source_size", [56, 112])
def test_patchify_matches_hf_image_processor(source_size):
    """A still image is a 2-frame video in Qwen2-VL's layout: our rows must equal HF's (PIL backend)."""
    image = np.random.default_rng(0).integers(0, 256, (source_size, source_size, 3), dtype=np.uint8)
    hf = Qwen2VLImageProcessorPil(patch_size=14, temporal_patch_size=2, merge_size=2,
                                  size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56})
    expected = hf(images=[Image.fromarray(image)], return_tensors="pt")
    s = default_settings("qwen2_5_omni")
    rows, grid = patchify(resize_and_normalize(image[None], 56, 56, s.image_mean, s.image_std), 14, 2, 2)
    assert grid.tolist() == expected["image_grid_thw"][0].tolist() == [1, 4, 4]
    assert torch.allclose(rows, expected["pixel_values"], atol=1e-5)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("num_frames,grid_t", [(4, 2), (3, 2), (1, 1), (8, 4)])
def test_video_grid_and_token_counts(name, num_frames, grid_t):
    policy = PRESETS[name](seed=0)
    size = policy.settings.frame_height
    frames = np.random.default_rng(0).integers(0, 256, (num_frames, 40, 52, 3), dtype=np.uint8)  # resized to size
    rows, grid = policy.preprocessor.video_inputs(frames)
    patches = size // policy.settings.patch_size
    assert grid.tolist() == [grid_t, patches, patches]
    assert rows.shape == (grid_t * patches * patches, 3 * 2 * policy.settings.patch_size ** 2)
    tokens = policy.preprocessor.video_tokens(grid)
    assert tokens == grid_t * patches * patches // 4
    with torch.no_grad():
        out = policy.thinker.model.get_video_features(rows, grid[None], return_dict=True)
    assert out.pooler_output[0].shape[0] == tokens
    batch = policy.prepare([ClipInput("q", frames=frames)])
    assert int((batch.input_ids == policy.thinker.config.video_token_id).sum()) == tokens


@pytest.mark.parametrize("name,tokens_per_second", [("qwen2.5-omni-tiny", 25), ("qwen3-omni-tiny", 13)])
def test_audio_features_match_hf_and_token_counts(name, tokens_per_second):
    policy = PRESETS[name](seed=0)
    rng = np.random.default_rng(0)
    hf = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400)
    for samples in (16000, 11000, 35210, 480):
        wav = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        ours = policy.preprocessor.audio_inputs(wav)  # clip + short tail
        full = hf(wav, sampling_rate=16000, padding="max_length", return_attention_mask=True, return_tensors="np")
        valid = int(full["attention_mask"][0].sum())  # HF: padded to 30 s
        assert ours.shape == (128, valid)
        np.testing.assert_allclose(ours, full["input_features"][0, :, :valid], atol=1e-5)
        tokens = policy.preprocessor.audio_tokens(valid)
        with torch.no_grad():
            mask = torch.ones(1, valid, dtype=torch.long)
            encoded = policy.module._audio_features(torch.from_numpy(ours)[None], mask)
        assert encoded.shape[0] == tokens
        if samples == 16000:
            assert tokens == tokens_per_second


def test_prompt_layout_and_left_padding(policy):
    clips = make_clips(policy.settings.frame_height)
    batch = policy.prepare(clips)
    ids, mask = batch.input_ids, batch.attention_mask
    tok = policy.tokenizer
    assert (mask.sum(1) == mask.shape[1]).sum() >= 1 and bool((mask[:, -1] == 1).all())  # left-padded
    assert bool((ids[mask == 0] == tok.pad_token_id).all())
    for row, clip in zip(range(3), clips):
        present = ids[row][mask[row] == 1].tolist()
        video = [i for i, t in enumerate(present) if t == tok.video_token_id]
        audio = [i for i, t in enumerate(present) if t == tok.audio_token_id]
        assert bool(video) == (clip.frames is not None) and bool(audio) == (clip.waveform is not None)
        assert (tok.vision_bos_token_id in present) == (clip.frames is not None)
        assert (tok.audio_bos_token_id in present) == (clip.waveform is not None)
        if video and audio:
            assert video[-1] < audio[0]  # video part, then audio part
        media_end = max(video + audio)
        assert clip.question in tok.decode(present[media_end:])  # the question comes after the media
    assert batch.media["video_clip_index"].tolist() == [0, 1]
    assert batch.media["audio_clip_index"].tolist() == [0, 2]


# -- scoring -----------------------------------------------------------------------------------

def test_forward_backward_reaches_every_tower(policy):
    batch = policy.prepare(make_clips(policy.settings.frame_height)[:1])
    ids, mask = policy.encode_completions(["<think>The mouth turns up.</think>\n<answer>happy</answer>"])
    policy.thinker.zero_grad()
    logprobs = policy.token_logprobs(batch, ids, torch.tensor([0]))
    assert logprobs.shape == ids.shape and bool((logprobs <= 0).all())
    (-(logprobs * mask).sum()).backward()
    for part in ("llm", "vision_tower", "vision_projector", "audio_tower", "audio_projector"):
        grads = [p.grad for m in policy.parts()[part] for p in m.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), part
    policy.thinker.zero_grad()


@pytest.mark.parametrize("share_prompts", [True, False])
def test_token_logprobs_equal_naive_per_row_forward(policy, share_prompts):
    policy.module.share_prompts = share_prompts
    clips = make_clips(policy.settings.frame_height)
    batch = policy.prepare(clips)
    ids, _ = policy.encode_completions(["<think>x</think><answer>sad</answer>", "happy",
                                        "<think>The voice is low and slow.</think>\n<answer>sad</answer>",
                                        "neutral", "angry", "<answer>fear</answer>"])
    clip_index = torch.tensor([2, 0, 1, 0, 2, 1])
    with torch.no_grad():
        ours = policy.token_logprobs(batch, ids, clip_index)  # (6, C)
        for row, clip in enumerate(clip_index.tolist()):
            keep = batch.attention_mask[clip] == 1
            prompt = batch.input_ids[clip][keep][None]
            full = torch.cat([prompt, ids[row:row + 1]], dim=1)
            logits = policy.thinker(input_ids=full, attention_mask=torch.ones_like(full),
                                    **per_clip_media(batch, clip)).logits[0, prompt.shape[1] - 1:-1]
            naive = torch.log_softmax(logits.float(), -1).gather(-1, ids[row][:, None])[:, 0]
            assert torch.allclose(ours[row], naive, atol=1e-5), (row, (ours[row] - naive).abs().max())
    policy.module.share_prompts = True


def test_shared_prompt_gradients_equal_flat_gradients(policy):
    """Back-propagating through the shared prompt keys / values gives the per-row forward's gradients."""
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    ids, mask = policy.encode_completions(["<answer>sad</answer>", "<think>loud</think><answer>angry</answer>",
                                           "happy", "<think>flat voice</think>"])
    clip_index = torch.tensor([0, 0, 2, 1])
    grads = []
    for share in (True, False):
        policy.module.share_prompts = share
        policy.thinker.zero_grad()
        (-(policy.token_logprobs(batch, ids, clip_index) * mask).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in policy.thinker.named_parameters() if p.grad is not None})
    policy.module.share_prompts = True
    policy.thinker.zero_grad()
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-4, rtol=1e-4), name


def test_batch_logits_equal_per_clip_logits(policy):
    clips = make_clips(policy.settings.frame_height)
    ids, _ = policy.encode_completions(["<think>calm</think><answer>neutral</answer>"] * 2)
    with torch.no_grad():
        batch = policy.prepare([clips[1], clips[0]])  # different prompt lengths -> left padding
        together = policy.module(batch.input_ids, batch.attention_mask, ids, torch.tensor([0, 1]), batch.media,
                                 return_logits=True)
        for row, clip in enumerate([clips[1], clips[0]]):
            alone = policy.prepare([clip])
            single = policy.module(alone.input_ids, alone.attention_mask, ids[row:row + 1], torch.tensor([0]),
                                   alone.media, return_logits=True)
            assert torch.allclose(together[row], single[0], atol=1e-5)


class CountingWrapper(nn.Module):
    """Stands in for a DDP / accelerate wrapper: delegates and counts calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


def test_one_module_call_and_media_encoded_once_per_clip(policy):
    batch = policy.prepare(make_clips(policy.settings.frame_height)[:2])  # clip 0 both, clip 1 video
    completions = policy.generate(batch, num_return_sequences=4, sampling=SamplingConfig(max_new_tokens=5))
    encoder_calls = {"visual": 0, "audio": 0}
    hooks = [policy.thinker.model.visual.register_forward_hook(lambda *_: encoder_calls.__setitem__(
                 "visual", encoder_calls["visual"] + 1)),
             policy.thinker.model.audio_tower.register_forward_hook(lambda *_: encoder_calls.__setitem__(
                 "audio", encoder_calls["audio"] + 1))]
    original = policy.module
    policy.module = CountingWrapper(original)
    try:
        wrapped = policy.token_logprobs(batch, completions.ids, completions.clip_index)
        assert policy.module.calls == 1
        assert encoder_calls == {"visual": 1, "audio": 1}  # 8 rows, 2 videos in one call, 1 audio
        encoder_calls.update(visual=0, audio=0)
        policy.generate(batch, num_return_sequences=4, sampling=SamplingConfig(max_new_tokens=3, do_sample=True))
        assert encoder_calls == {"visual": 1, "audio": 1}
    finally:
        policy.module = original
        for hook in hooks:
            hook.remove()
    assert torch.equal(wrapped, policy.token_logprobs(batch, completions.ids, completions.clip_index))


# -- generation --------------------------------------------------------------------------------

def test_greedy_generate_matches_hf_generate(policy):
    clips = make_clips(policy.settings.frame_height)
    ours = policy.generate(policy.prepare(clips), sampling=SamplingConfig(max_new_tokens=10))
    for index, clip in enumerate(clips):
        single = policy.prepare([clip])
        out = policy.thinker.generate(input_ids=single.input_ids, attention_mask=single.attention_mask,
                                      **per_clip_media(single, 0), max_new_tokens=10, do_sample=False,
                                      suppress_tokens=policy.suppressed_token_ids.tolist(),
                                      eos_token_id=policy.eos_token_id, pad_token_id=policy.pad_token_id)
        hf = out[0, single.input_ids.shape[1]:].tolist()
        assert ours.ids[index, :len(hf)].tolist() == hf


@pytest.mark.parametrize("repetition_penalty", [1.0, 1.3])
def test_generate_matches_hf_generate_in_tokens_and_logprobs(policy, repetition_penalty):
    """Clip by clip, the loop (pre-sized cache, Qwen2Step or the module step, the top-k sampler) against HF
    generate (a growing cache, its own logits processors, the penalty over prompt + new tokens): the same
    tokens, and log-probabilities equal to the log-softmax of HF's raw per-step logits."""
    sampling = SamplingConfig(max_new_tokens=12, logprobs=True, repetition_penalty=repetition_penalty)
    for clip in make_clips(policy.settings.frame_height):
        single = policy.prepare([clip])
        ours = policy.generate(single, num_return_sequences=2, sampling=sampling)
        with torch.no_grad():
            hf = policy.thinker.generate(input_ids=single.input_ids, attention_mask=single.attention_mask,
                                         **per_clip_media(single, 0), max_new_tokens=12, do_sample=False,
                                         repetition_penalty=repetition_penalty,
                                         suppress_tokens=policy.suppressed_token_ids.tolist(),
                                         eos_token_id=policy.eos_token_id, pad_token_id=policy.pad_token_id,
                                         return_dict_in_generate=True, output_logits=True)
        ids = hf.sequences[0, single.input_ids.shape[1]:]                                      # (C,)
        logprobs = torch.stack(hf.logits, dim=1)[0].float().log_softmax(-1).gather(-1, ids[:, None])[:, 0]  # (C,)
        width = int(ours.mask[0].sum())
        assert ours.ids[0, :width].tolist() == ids[:width].tolist() and torch.equal(ours.ids[0], ours.ids[1])
        assert torch.allclose(ours.logprobs[0, :width], logprobs[:width], atol=1e-5)


def test_generate_logprobs_equal_teacher_forced_scoring(policy):
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    torch.manual_seed(0)
    out = policy.generate(batch, num_return_sequences=2,
                          sampling=SamplingConfig(max_new_tokens=12, do_sample=True, logprobs=True))
    with torch.no_grad():
        scored = policy.token_logprobs(batch, out.ids, out.clip_index)                       # (N, C)
    assert torch.allclose(scored * out.mask, out.logprobs, atol=1e-4)


def test_the_module_step_and_qwen2_step_decode_alike(policy):
    """The family's two steppers on the same pre-sized cache: Qwen2Step (Qwen2.5's text model) and the
    language model's own forward (what Qwen3's MoE always uses)."""
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    sampling = SamplingConfig(max_new_tokens=12, logprobs=True, repetition_penalty=1.3)
    lean = policy.generate(batch, num_return_sequences=2, sampling=sampling)
    stepper = policy.stepper
    policy.stepper = lambda *args: stepper(*args, lean=False)
    try:
        forward = policy.generate(batch, num_return_sequences=2, sampling=sampling)
    finally:
        del policy.stepper
    assert torch.equal(lean.ids, forward.ids) and torch.equal(lean.mask, forward.mask)
    assert torch.allclose(lean.logprobs, forward.logprobs, atol=1e-5)


@pytest.mark.parametrize("do_sample", [False, True])
def test_generate_groups_rows_per_clip(policy, do_sample):
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    torch.manual_seed(0)
    out = policy.generate(batch, num_return_sequences=3,
                          sampling=SamplingConfig(max_new_tokens=12, do_sample=do_sample, top_k=0))
    assert out.ids.shape[0] == 9 and out.clip_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(out.texts) == 9 and out.mask.shape == out.ids.shape
    if not do_sample:
        for clip in range(3):
            assert torch.equal(out.ids[3 * clip], out.ids[3 * clip + 2])
        assert not torch.equal(out.ids[0], out.ids[3])  # outputs depend on the clip
    else:
        assert len({tuple(r) for r in out.ids.tolist()}) > 3


def eos_bias_hook(policy, bias: float):
    def hook(_module, _inputs, output):
        output = output.clone()
        output[..., policy.eos_token_id] += bias
        return output

    return policy.thinker.lm_head.register_forward_hook(hook)


def test_completion_mask_stops_at_first_eos(policy):
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    handle = eos_bias_hook(policy, 4.0)  # eos likely but not certain: varied lengths
    try:
        torch.manual_seed(0)
        out = policy.generate(batch, num_return_sequences=4, sampling=SamplingConfig(max_new_tokens=15, do_sample=True))
    finally:
        handle.remove()
    lengths = out.lengths.tolist()
    assert len(set(lengths)) > 1
    for row in range(out.ids.shape[0]):
        ids, mask = out.ids[row].tolist(), out.mask[row].tolist()
        n = lengths[row]
        assert mask == [1] * n + [0] * (len(ids) - n)
        if policy.eos_token_id in ids[:n]:
            assert ids.index(policy.eos_token_id) == n - 1
        else:
            assert n == len(ids)  # ran to max_new_tokens
        assert all(t == policy.pad_token_id for t in ids[n:])
        assert out.texts[row] == policy.tokenizer.decode(ids[:n], skip_special_tokens=True)
    handle = eos_bias_hook(policy, 1e4)
    try:
        out = policy.generate(batch, num_return_sequences=2)
    finally:
        handle.remove()
    assert out.ids.tolist() == [[policy.eos_token_id]] * 6 and out.texts == [""] * 6


@pytest.mark.parametrize("do_sample", [False, True])
def test_media_tokens_never_generated_even_when_favoured(policy, do_sample):
    suppressed = policy.suppressed_token_ids
    tok = policy.tokenizer
    media = [tok.audio_token_id, tok.image_token_id, tok.video_token_id, tok.audio_bos_token_id,
             tok.audio_eos_token_id, tok.vision_bos_token_id, tok.vision_eos_token_id]
    assert set(media) <= set(suppressed.tolist())

    def favour_media(_module, _inputs, output):
        output = output.clone()
        output[..., media] += 1e4
        return output

    handle = policy.thinker.lm_head.register_forward_hook(favour_media)
    try:
        torch.manual_seed(0)
        out = policy.generate(policy.prepare(make_clips(policy.settings.frame_height)), num_return_sequences=3,
                              sampling=SamplingConfig(max_new_tokens=8, do_sample=do_sample))
    finally:
        handle.remove()
    assert not bool(torch.isin(out.ids, suppressed).any())
    assert not any(t in text for text in out.texts for t in policy.settings.tokens.all())
    # and the completions can be scored: no placeholder misaligns the media features
    assert policy.token_logprobs(policy.prepare(make_clips(policy.settings.frame_height)), out.ids,
                                 out.clip_index).shape == out.ids.shape


# -- save / load, parts, presets ---------------------------------------------------------------

def test_save_load_round_trip(policy, tmp_path):
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    ids, _ = policy.encode_completions(["<think>tense voice</think>\n<answer>angry</answer>"] * 3)
    with torch.no_grad():
        before = policy.module(batch.input_ids, batch.attention_mask, ids, torch.arange(3), batch.media,
                               return_logits=True)
    greedy = policy.generate(batch, sampling=SamplingConfig(max_new_tokens=8))
    policy.save(tmp_path / "saved")
    loaded = load_any_policy(tmp_path / "saved")
    assert isinstance(loaded, QwenOmniPolicy) and loaded.family == policy.family
    assert loaded.settings == policy.settings
    reloaded_batch = loaded.prepare(make_clips(policy.settings.frame_height))
    assert torch.equal(reloaded_batch.input_ids, batch.input_ids)
    with torch.no_grad():
        after = loaded.module(reloaded_batch.input_ids, reloaded_batch.attention_mask, ids, torch.arange(3),
                              reloaded_batch.media, return_logits=True)
    assert torch.equal(before, after)
    again = loaded.generate(reloaded_batch, sampling=SamplingConfig(max_new_tokens=8))
    assert torch.equal(greedy.ids, again.ids) and greedy.texts == again.texts
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert len(loaded.tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1


def test_parts_are_disjoint_and_cover_the_model(policy):
    parts = policy.parts()
    assert set(parts) == {"llm", "vision_tower", "vision_projector", "audio_tower", "audio_projector"}
    owner: dict[int, str] = {}
    for name, modules in parts.items():
        assert modules, name
        for module in modules:
            for param in module.parameters():
                assert owner.setdefault(id(param), name) == name
    assert set(owner) == {id(p) for p in policy.thinker.parameters()}
    assert isinstance(policy, Policy)


def test_bad_inputs_are_refused(policy):
    size = policy.settings.frame_height
    with pytest.raises(ValueError, match="media token"):
        policy.prepare([ClipInput(f"look {policy.settings.tokens.video} here", frames=make_clips(size)[1].frames)])
    with pytest.raises(ValueError, match="too short"):
        policy.prepare([ClipInput("q", waveform=np.zeros(0, np.float32))])
    batch = policy.prepare(make_clips(size)[:1])
    bad = torch.tensor([[policy.tokenizer.video_token_id, policy.eos_token_id]])
    with pytest.raises(ValueError, match="placeholder"):
        policy.token_logprobs(batch, bad, torch.tensor([0]))
    with pytest.raises(ValueError, match="media tokens"):
        policy.encode_completions([f"a {policy.settings.tokens.audio} b"])
    with pytest.raises(ValueError, match="clip_index"):
        policy.token_logprobs(batch, bad[:, 1:], torch.tensor([3]))
    template = policy.tokenizer.chat_template
    try:
        policy.tokenizer.chat_template = QWEN_CHAT_TEMPLATE  # renders text parts only
        with pytest.raises(ValueError, match="0 video placeholders"):
            policy.prepare(make_clips(size)[:1])
        policy.tokenizer.chat_template = "{% for m in messages %}{{ m['content'] + '!' }}{% endfor %}"  # text-only
        with pytest.raises(ValueError, match="cannot render media parts"):
            policy.prepare(make_clips(size)[:1])
    finally:
        policy.tokenizer.chat_template = template


def test_preset_registry_and_overrides():
    assert set(PRESETS) == {"qwen2.5-omni-tiny", "qwen3-omni-tiny", "qwen2.5-omni-demo", "qwen2.5-omni-3b",
                            "qwen2.5-omni-7b"}
    for builder in PRESETS.values():
        first_line = builder.__doc__.strip().splitlines()[0]
        assert first_line.startswith("Qwen") and first_line.endswith(".")
    count = lambda p: sum(w.numel() for w in p.thinker.parameters())  # noqa: E731
    assert 0.2e6 < count(PRESETS["qwen2.5-omni-tiny"]()) < 0.4e6
    assert 0.2e6 < count(PRESETS["qwen3-omni-tiny"]()) < 0.4e6
    demo = PRESETS["qwen2.5-omni-demo"]()
    assert 0.8e6 < count(demo) < 1.3e6
    assert 600 <= len(demo.tokenizer) <= 1000
    assert demo.thinker.config.text_config.hidden_size == 128 and demo.thinker.config.text_config.num_hidden_layers == 4
    smaller = PRESETS["qwen2.5-omni-demo"](text_layers=2, vision_depth=1, frame_size=84)
    assert count(smaller) < count(demo) and smaller.settings.frame_height == 84
    with pytest.raises(TypeError, match="unknown override"):
        PRESETS["qwen2.5-omni-demo"](text_layerz=2)
    a, b = PRESETS["qwen2.5-omni-tiny"](seed=3), PRESETS["qwen2.5-omni-tiny"](seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.thinker.parameters(), b.thinker.parameters()))


@pytest.mark.parametrize("name,expected_billions,hidden", [("qwen2.5-omni-3b", 4.39, 2048),
                                                           ("qwen2.5-omni-7b", 8.93, 3584)])
def test_real_size_presets_on_meta_device(name, expected_billions, hidden):
    policy = PRESETS[name](device="meta", dtype="bfloat16")  # no memory, no init: shapes only
    total = sum(p.numel() for p in policy.thinker.parameters())
    assert abs(total / 1e9 - expected_billions) < 0.01
    config = policy.thinker.config
    assert config.text_config.hidden_size == hidden == config.vision_config.out_hidden_size == \
        config.audio_config.output_dim
    assert config.vision_config.hidden_size == 1280 and config.vision_config.depth == 32
    assert config.audio_config.d_model == 1280 and config.audio_config.encoder_layers == 32
    assert config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert config.text_config.vocab_size == PRESET_DIMS[name].model_vocab_size
    # the released special-token ids when no tokenizer is given
    released = thinker_config(PRESET_DIMS[name])
    assert (released.video_token_id, released.audio_token_id, released.vision_start_token_id) == \
        (151656, 151646, 151652)
    assert policy.settings.frame_height == 336 and policy.settings.num_frames == 8


# -- media norm (off by default) ---------------------------------------------------------------

def media_token_norms(policy: QwenOmniPolicy, clips: list[ClipInput]) -> tuple[float, float]:
    """Mean L2 norm of the video and of the audio tokens as they enter the language model."""
    batch = policy.prepare(clips)
    with torch.no_grad():
        embeds = policy.module.embed_prompts(batch.input_ids, batch.attention_mask, batch.media).embeds  # (B, P, D)
    config = policy.thinker.config
    norms = embeds.norm(dim=-1)  # (B, P)
    return (float(norms[batch.input_ids == config.video_token_id].mean()),
            float(norms[batch.input_ids == config.audio_token_id].mean()))


def test_no_media_norm_by_default():
    policy = PRESETS["qwen2.5-omni-tiny"](seed=0)
    assert policy.media_norm is None and policy.module.media_norm is None
    assert {name.removeprefix("thinker.") for name, _ in policy.module.named_parameters()} == \
        {name for name, _ in policy.thinker.named_parameters()}


@pytest.mark.parametrize("name", TINY)
def test_media_norm_puts_media_tokens_at_the_text_scale(name):
    plain = sharpen(PRESETS[name](seed=0))
    normed = PRESETS[name](seed=0, media_norm=True)
    embeddings = normed.thinker.model.get_input_embeddings().weight[:len(normed.tokenizer)]
    text_norm = float(embeddings.detach().norm(dim=1).mean())   # the target, from the initial embeddings
    hidden = normed.thinker.config.text_config.hidden_size
    assert torch.allclose(normed.media_norm.video.weight, torch.full((hidden,), text_norm / hidden ** 0.5))
    sharpen(normed)   # same draws: the thinkers are equal, only the norm differs
    assert all(torch.equal(a, b) for a, b in zip(plain.thinker.parameters(), normed.thinker.parameters()))
    clips = make_clips(plain.settings.frame_height)
    plain_video, plain_audio = media_token_norms(plain, clips)
    video, audio = media_token_norms(normed, clips)
    assert abs(plain_video / text_norm - 1) > 0.5       # sharpened towers: far from the text scale
    assert video == pytest.approx(text_norm, rel=1e-3) and audio == pytest.approx(text_norm, rel=1e-3)
    # the norm trains with its projector and is owned by no other part
    parts = normed.parts()
    assert normed.media_norm.video in parts["vision_projector"] and normed.media_norm.audio in parts["audio_projector"]
    owners = {id(p) for modules in parts.values() for m in modules for p in m.parameters()}
    assert owners == {id(p) for p in normed.module.parameters()}


def test_media_norm_is_saved_and_loaded_with_the_model(tmp_path):
    policy = sharpen(PRESETS["qwen2.5-omni-tiny"](seed=0, media_norm=True))
    with torch.no_grad():   # a trained norm: not the initial values
        policy.media_norm.video.weight.mul_(1.7)
        policy.media_norm.audio.bias.add_(0.3)
    batch = policy.prepare(make_clips(policy.settings.frame_height))
    ids, _ = policy.encode_completions(["<think>tense voice</think>\n<answer>angry</answer>"] * 3)
    with torch.no_grad():
        before = policy.token_logprobs(batch, ids, torch.arange(3))  # (N, C)
    policy.save(tmp_path / "saved")
    loaded = load_any_policy(tmp_path / "saved")
    assert loaded.media_norm is not None
    for (name, a), (_, b) in zip(policy.media_norm.state_dict().items(), loaded.media_norm.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        after = loaded.token_logprobs(loaded.prepare(make_clips(policy.settings.frame_height)), ids, torch.arange(3))
    assert torch.equal(before, after)
    # a folder without the file loads without a norm, and gives other numbers
    plain = PRESETS["qwen2.5-omni-tiny"](seed=0)
    plain.save(tmp_path / "plain")
    assert load_any_policy(tmp_path / "plain").media_norm is None
