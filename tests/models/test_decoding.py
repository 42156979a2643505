"""The decoding loop's pieces: the pre-sized cache layer against transformers' growing one, the candidate
sampler against transformers' logits warpers, the cut at stop, the eval-mode guard, target encoding, and
the retired ``decoder`` option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from r1omni.models.decoding import (
    PreallocatedLayer,
    cut_at_stop,
    decode,
    encode_completions,
    evaluating,
    preallocated_cache,
    sample_tokens,
)
from r1omni.models.policy import SamplingConfig


def test_preallocated_layer_holds_what_a_growing_layer_holds():
    growing, preallocated = DynamicLayer(), PreallocatedLayer(capacity=9)
    generator = torch.Generator().manual_seed(0)
    for length in (5, 1, 1, 2):
        keys, values = torch.randn(3, 2, length, 4, generator=generator), torch.randn(3, 2, length, 4,
                                                                                      generator=generator)
        expected = growing.update(keys, values)
        got = preallocated.update(keys, values)
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
        assert preallocated.get_seq_length() == growing.get_seq_length()
        assert preallocated.get_mask_sizes(1) == growing.get_mask_sizes(1)
    with pytest.raises(RuntimeError, match="KV cache full"):
        preallocated.update(torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))


def test_preallocated_cache_repeats_each_prompt_for_its_rows():
    prefill = DynamicCache()
    keys = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)
    prefill.update(keys, -keys, 0)
    cache = preallocated_cache(prefill, repeats=3, new_tokens=4)
    layer = cache.layers[0]
    assert layer.capacity == 7 and cache.get_seq_length() == 3
    assert torch.equal(layer.keys, keys.repeat_interleave(3, dim=0))
    assert torch.equal(layer.values, -keys.repeat_interleave(3, dim=0))


def warped_probabilities(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    processors = LogitsProcessorList([TemperatureLogitsWarper(sampling.temperature)])
    if sampling.top_k:
        processors.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1:
        processors.append(TopPLogitsWarper(sampling.top_p))
    return F.softmax(processors(None, logits.clone()), dim=-1)


@pytest.mark.parametrize("top_k,top_p,temperature", [(5, 1.0, 1.0), (0, 0.8, 0.7), (8, 0.6, 1.3), (0, 1.0, 0.5)])
def test_candidate_sampling_draws_what_the_warpers_give(top_k, top_p, temperature):
    logits = torch.randn(1, 40, generator=torch.Generator().manual_seed(3)) * 2
    logits[0, 7] = float("-inf")  # a suppressed token
    sampling = SamplingConfig(do_sample=True, top_k=top_k, top_p=top_p, temperature=temperature)
    expected = warped_probabilities(logits, sampling)[0]                                     # (V,)
    torch.manual_seed(0)
    draws = sample_tokens(logits.expand(40000, -1), sampling)                               # (40000,)
    observed = torch.bincount(draws, minlength=40).float() / len(draws)
    assert set(draws.unique().tolist()) <= set(expected.nonzero()[:, 0].tolist())
    assert 0.5 * (observed - expected).abs().sum() < 0.02                                    # total variation
    torch.manual_seed(0)
    assert torch.equal(draws, sample_tokens(logits.expand(40000, -1), sampling))             # seeded


def test_greedy_takes_the_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, float("-inf"), 0.0]])
    assert sample_tokens(logits, SamplingConfig()).tolist() == [1, 0]


def test_a_config_that_still_sets_decoder_is_refused_naming_the_key(tmp_path):
    """There is one decoding loop: a recipe or override that still picks one is told so, by its key."""
    from r1omni.train.grpo import GRPOConfig
    from r1omni.yamlconfig import ConfigError, load_config

    recipe = tmp_path / "grpo.yaml"
    recipe.write_text("model: preset:qwen2.5-omni-tiny\ndata: d.jsonl\noutput_dir: out\nsampling:\n  decoder: fast\n")
    with pytest.raises(ConfigError, match=r"grpo\.yaml: sampling\.decoder: removed: there is one decoding loop"):
        load_config(GRPOConfig, recipe)
    with pytest.raises(ConfigError, match=r"sampling\.decoder: removed"):
        load_config(GRPOConfig, None, ["model=m", "data=d", "output_dir=o", "sampling.decoder=reference"])
    with pytest.raises(TypeError):
        SamplingConfig(decoder="fast")


@pytest.mark.parametrize(("ids", "stop_ids", "expected_ids", "expected_mask"), [
    ([[5, 9, 6, 9], [5, 5, 5, 5]], (9,), [[5, 9, 0, 0], [5, 5, 5, 5]], [[1, 1, 0, 0], [1, 1, 1, 1]]),
    ([[7, 5, 8, 9], [5, 8, 7, 0]], (9, 8), [[7, 5, 8], [5, 8, 0]], [[1, 1, 1], [1, 1, 0]]),   # any stop id
    ([[9, 9, 0], [9, 0, 0]], (9,), [[9], [9]], [[1], [1]]),          # columns no row reaches are dropped
])
def test_cut_at_stop_keeps_each_row_up_to_its_first_stop(ids, stop_ids, expected_ids, expected_mask):
    got_ids, got_mask = cut_at_stop(torch.tensor(ids), stop_ids, pad_id=0)
    assert got_ids.tolist() == expected_ids and got_mask.tolist() == expected_mask


def test_evaluating_restores_each_submodules_own_mode():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Sequential(torch.nn.Dropout(0.5)))
    model[1].eval()
    with pytest.raises(RuntimeError), evaluating(model):
        assert not any(module.training for module in model.modules())
        raise RuntimeError("a failure inside still restores the modes")
    assert [module.training for module in model.modules()] == [True, True, False, False]


def test_encode_completions_appends_the_end_and_returns_cpu_tensors():
    from r1omni.models.tokenizer import build_bpe_tokenizer

    tokenizer = build_bpe_tokenizer()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, mask = encode_completions(tokenizer, ["happy", "a sad voice"], end, tokenizer.pad_token_id)
    assert ids.device.type == mask.device.type == "cpu" and ids.dtype == mask.dtype == torch.long
    lengths = mask.sum(1).tolist()
    assert [ids[row, length - 1].item() for row, length in enumerate(lengths)] == [end, end]
    assert (ids[mask == 0] == tokenizer.pad_token_id).all()
    with pytest.raises(ValueError, match="media tokens"):
        encode_completions(tokenizer, ["happy"], end, tokenizer.pad_token_id, forbidden_ids=ids[0, :1])


def test_decode_records_logprobs_only_when_asked():
    """The per-step record is optional (GRPO scores again); asked for, it is each chosen token's log-softmax."""
    torch.manual_seed(0)
    table = torch.randn(97, 97)                                        # next-token logits of each token
    first = table[torch.tensor([1, 2, 3])]                             # (N, V)
    args = dict(stop_ids=torch.tensor([-1]), pad_id=0, prompt_ids=torch.zeros(3, 0, dtype=torch.long))
    plain_ids, plain_logprobs = decode(first, lambda tokens, index: table[tokens], SamplingConfig(max_new_tokens=6),
                                       **args)
    ids, logprobs = decode(first, lambda tokens, index: table[tokens],
                           SamplingConfig(max_new_tokens=6, logprobs=True), **args)
    assert plain_logprobs is None and torch.equal(plain_ids, ids)
    logits = torch.cat([first[:, None], table[ids[:, :-1]]], dim=1)   # (N, C, V)
    expected = logits.log_softmax(-1).gather(-1, ids[..., None])[..., 0]
    assert torch.allclose(logprobs, expected, atol=1e-6)


def _tiny_qwen2(seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return Qwen2ForCausalLM(config).eval()


def test_qwen2_step_equals_the_decoders_own_step_on_left_padded_rows():
    from transformers import DynamicCache

    from r1omni.models.decoding import Qwen2Step

    model = _tiny_qwen2()
    ids = torch.randint(0, 97, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, :2] = 0   # left padding
    mask[2, :5] = 0
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    caches = [DynamicCache(config=model.config) for _ in range(2)]
    with torch.no_grad():
        for cache in caches:
            model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, cache=cache)
        lean = Qwen2Step(model.model, preallocated_cache(caches[0], 1, 4), F.pad(mask, (0, 4), value=1))
        tokens, next_position = torch.tensor([5, 17, 42]), mask.sum(1)
        for index in range(3):
            full_mask = F.pad(mask, (0, index + 1), value=1)
            expected = model(input_ids=tokens[:, None], attention_mask=full_mask,
                             position_ids=(next_position + index)[:, None], use_cache=True,
                             cache=caches[1]).logits[:, -1]                                   # (N, V)
            got = model.lm_head(lean(tokens, next_position + index))                         # (N, V)
            assert torch.allclose(got, expected, atol=1e-5), index
            tokens = expected.argmax(-1)


def test_qwen2_step_tables_give_the_numbers_of_the_per_step_computation():
    """The rotary table and the additive key mask are built once per rollout; both must give exactly what
    the decoder's rotary embedding and SDPA's own boolean-mask conversion give (demo results depend on it)."""
    from r1omni.models.decoding import Qwen2Step

    model = _tiny_qwen2()
    key_mask = torch.ones(3, 11, dtype=torch.bool)
    key_mask[1, :2] = False
    layer = PreallocatedLayer(11)
    step = Qwen2Step(model.model, Cache(layers=[layer]), key_mask)
    positions = torch.tensor([4, 0, 9])
    cos, signed_sin = step._rotary(positions, torch.float32)                               # (N, 1, D_h)
    x = torch.zeros(1, 3, model.config.hidden_size)
    expected_cos, expected_sin = model.model.rotary_emb(x, positions[None])                 # (1, N, D_h)
    half = step.head_dim // 2
    assert torch.equal(cos[:, 0], expected_cos[0])
    assert torch.equal(signed_sin[:, 0], torch.cat((-expected_sin[0, :, :half], expected_sin[0, :, half:]), -1))
    q, keys = torch.randn(3, 4, 1, step.head_dim), torch.randn(3, 2, 11, step.head_dim)
    by_bool = F.scaled_dot_product_attention(q, keys, keys, attn_mask=key_mask[:, None, None], enable_gqa=True)
    assert torch.equal(step._attend(q, keys, keys, None, step._step_mask(q.dtype)), by_bool)


def test_qwen2_step_refuses_other_decoders():
    from r1omni.models import init_preset
    from r1omni.models.decoding import Qwen2Step

    assert Qwen2Step.supports(_tiny_qwen2().model)
    moe = init_preset("qwen3-omni-tiny", seed=0).thinker.model.language_model
    assert not Qwen2Step.supports(moe)
    with pytest.raises(ValueError, match="not a Qwen2-architecture decoder"):
        Qwen2Step(moe, None, torch.ones(1, 1))


@pytest.mark.parametrize("do_sample", [False, True])
def test_asking_whether_all_rows_ended_less_often_gives_the_same_answer(do_sample):
    """``sync_every`` k: the loop asks the device every k steps only and trims what it decoded past the
    step at which every row had ended; ids and log-probs equal those of asking at every step."""
    torch.manual_seed(0)
    table = 0.5 * torch.randn(31, 31)
    table[torch.arange(31), (torch.arange(31) + 1) % 31] += 4.0   # mostly t -> t + 1; token 7 stops a row,
    table[:, 7] += 2.0                                             # so rows end after different steps
    first = table[torch.tensor([1, 2, 3, 4])]
    args = dict(stop_ids=torch.tensor([7]), pad_id=0, prompt_ids=torch.zeros(4, 0, dtype=torch.long))
    results = []
    for every in (1, 2, 3, 8, 40):
        torch.manual_seed(5)
        sampling = SamplingConfig(max_new_tokens=30, do_sample=do_sample, logprobs=True, sync_every=every)
        results.append(decode(first, lambda tokens, index: table[tokens], sampling, **args))
    ids, logprobs = results[0]
    assert (ids == 7).any(dim=1).all() and ids.shape[1] < 30    # every row stopped before the limit
    assert len({int((row == 7).nonzero()[0]) for row in ids}) > 1  # at different steps
    for other_ids, other_logprobs in results[1:]:
        assert torch.equal(other_ids, ids) and torch.equal(other_logprobs, logprobs)


def test_sync_every_must_be_positive():
    with pytest.raises(ValueError, match="sync_every"):
        SamplingConfig(sync_every=0)


def test_a_static_shape_step_gives_the_growing_steps_numbers():
    """``static_shapes``: every key / value written in place at a position held on the device, attention over
    the whole pre-sized cache behind a mask that hides the unwritten columns; the logits of each step equal
    the growing cache's within float rounding, on left-padded rows."""
    from r1omni.models.decoding import Qwen2Step

    model = _tiny_qwen2()
    ids = torch.randint(0, 97, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, :2] = 0
    mask[2, :5] = 0
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    prefill = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, cache=prefill)
        key_mask = F.pad(mask, (0, 5), value=1)
        growing = Qwen2Step(model.model, preallocated_cache(prefill, 1, 5), key_mask)
        static_cache = preallocated_cache(prefill, 1, 5, static=True)
        static = Qwen2Step(model.model, static_cache, key_mask)
        tokens, next_position = torch.tensor([5, 17, 42]), mask.sum(1)
        for index in range(5):
            expected = model.lm_head(growing(tokens, next_position + index))
            got = model.lm_head(static(tokens, next_position + index))
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            tokens = expected.argmax(-1)
    assert int(static.position) == 7 + 5 and static_cache.layers[0]._key_buffer.shape[2] == 12


@pytest.mark.parametrize("preset", ["qwen2.5-omni-tiny", "humanomni-tiny"])
def test_policies_decode_the_same_answers_with_static_shapes_and_rare_syncs(preset):
    import numpy as np

    from r1omni.models import ClipInput, init_preset

    policy = init_preset(preset, seed=0)
    rng = np.random.default_rng(0)
    clips = [ClipInput("How does this person feel?", rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8),
                       (0.1 * rng.standard_normal(16000)).astype(np.float32)) for _ in range(2)]
    batch = policy.prepare(clips)
    plain = policy.generate(batch, 2, SamplingConfig(max_new_tokens=12, logprobs=True))
    fast = policy.generate(batch, 2, SamplingConfig(max_new_tokens=12, logprobs=True, static_shapes=True,
                                                    sync_every=4))
    assert fast.texts == plain.texts and torch.equal(fast.ids, plain.ids)
    torch.testing.assert_close(fast.logprobs, plain.logprobs, rtol=1e-4, atol=1e-4)


def test_a_sampling_record_from_before_the_later_fields_reads_as_todays_defaults():
    from dataclasses import asdict

    from r1omni.models.policy import recorded_sampling

    today = asdict(SamplingConfig(max_new_tokens=9))
    earlier = {k: v for k, v in today.items() if k not in ("sync_every", "static_shapes")}
    assert recorded_sampling(earlier) == today
    assert recorded_sampling({**earlier, "decoder": "fast"}) == today
    assert recorded_sampling({**today, "sync_every": 4}) != today
