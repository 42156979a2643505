"""Shared-prefix scoring (``r1omni.models.prefix``) equals the per-row path, for both families, in float32.

Each family scores the same completions twice, ``share_prompts`` on (each clip's prompt through the LLM
once, its rows on its keys / values) and off (each row as prompt + completion, itself tested against a
plain per-clip forward in each family's own tests): the per-token log-probabilities must agree within
1e-5 and the parameter gradients with cosine >= 0.99999 and relative error <= 1e-4, for prompts
left-padded to different lengths, G in {1, 4}, a plain sum and the GRPO loss (μ = 1 and μ > 1, β = 0
and β > 0), with and without activation checkpointing.

Gradients are compared in float64 (the float32 gradients, cast): a float32 cosine of long vectors is
itself off by ~1e-5. Only the LLM's layers train (dropout-free), the rest run in eval mode, so that
BERT's dropout (HumanOmni's gate) draws nothing random between the two passes.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from r1omni.models.humanomni.presets import humanomni_tiny
from r1omni.models.policy import ClipInput
from r1omni.models.prefix import checkpointing
from r1omni.models.qwen_omni.presets import PRESETS as QWEN_PRESETS
from r1omni.train.losses import policy_loss

FAMILIES = ["humanomni-tiny", "qwen2.5-omni-tiny", "qwen3-omni-tiny"]
COMPLETIONS = ["<think>The mouth turns up.</think>\n<answer>happy</answer>", "<answer>sad</answer>", "neutral",
               "<think>flat voice, low</think><answer>sad</answer>"]


def _sharpen(model: torch.nn.Module, seed: int) -> None:
    """Weight matrices at unit-variance fan-in scale: the default 0.02 init gives near-uniform next-token
    distributions, whose gradients would be too small to tell the two paths apart."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.ndim >= 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) / weight.shape[-1] ** 0.5)


def _build(name: str, seed: int):
    policy = humanomni_tiny(seed=seed) if name == "humanomni-tiny" else QWEN_PRESETS[name](seed=seed)
    _sharpen(_model(policy), seed + 1)
    return policy


def _model(policy) -> torch.nn.Module:
    return policy.model if policy.family == "humanomni" else policy.thinker


def _decoder(policy) -> torch.nn.Module:
    return policy.model.model if policy.family == "humanomni" else policy.thinker.model.language_model


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request):
    """(policy, reference): same architecture, different weights; the reference scores in eval mode."""
    reference = _build(request.param, 10)
    _model(reference).eval()
    return _build(request.param, 0), reference


def _clips(size: int) -> list[ClipInput]:
    """Three clips whose prompts differ in length (a long question, no audio, no video): left padding."""
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(16000) / 16000)).astype(np.float32)
    frames = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    return [ClipInput("Which emotion is the most obvious in this clip, judging by face and voice?", frames, tone),
            ClipInput("Which emotion?", frames[:, ::-1].copy(), None),
            ClipInput("How does the voice sound?", None, rng.standard_normal(16000).astype(np.float32) * 0.1)]


def _frame_size(policy) -> int:
    return 32 if policy.family == "humanomni" else policy.settings.frame_height


@contextmanager
def _training(policy, checkpoint: bool, **checkpoint_kwargs):
    """The LLM's layers in train mode (checkpointed if asked), everything else in eval mode; undone after."""
    model = _model(policy)
    model.eval()
    for layer in _decoder(policy).layers:
        layer.train()
    if checkpoint:
        model.activation_checkpointing_enable(**checkpoint_kwargs)
    try:
        yield
    finally:
        if checkpoint:
            model.activation_checkpointing_disable()
        model.eval()
        policy.share_prompts = True


def _inputs(policy, group: int):
    batch = policy.prepare(_clips(_frame_size(policy)))
    lengths = batch.attention_mask.sum(dim=1)
    assert len(set(lengths.tolist())) == 3 and bool((batch.attention_mask == 0).any())  # left-padded, unequal
    ids, mask = policy.encode_completions(COMPLETIONS * 3 if group == 4 else COMPLETIONS[:3])  # (N, C)
    clip_index = torch.arange(3).repeat_interleave(group)                                   # (N,)
    return batch, ids, mask.float(), clip_index


def _scored(policy, share: bool, batch, ids, clip_index, loss_of):
    """Log-probs (N, C) and the gradients of ``loss_of(logp)`` with ``share_prompts`` = ``share``."""
    policy.share_prompts = share
    model = _model(policy)
    model.zero_grad(set_to_none=True)
    logp = policy.token_logprobs(batch, ids, clip_index)                                    # (N, C)
    loss_of(logp).backward()
    grads = {name: p.grad.double().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logp.detach(), grads


def _assert_equal(shared, per_row, mask):
    (logp_s, grads_s), (logp_r, grads_r) = shared, per_row
    assert ((logp_s - logp_r).abs() * mask).max() <= 1e-5, float(((logp_s - logp_r).abs() * mask).max())
    assert grads_s.keys() == grads_r.keys() and grads_s
    a = torch.cat([grads_s[name].flatten() for name in sorted(grads_s)])
    b = torch.cat([grads_r[name].flatten() for name in sorted(grads_r)])
    assert float(b.norm()) > 0
    cosine = float(a @ b / (a.norm() * b.norm()))
    relative = float((a - b).norm() / b.norm())
    assert cosine >= 0.99999 and relative <= 1e-4, (cosine, relative)


@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "checkpointed"])
@pytest.mark.parametrize("group", [1, 4])
def test_logprobs_and_gradients_equal_the_per_row_path(pair, group, checkpoint):
    policy, _ = pair
    batch, ids, mask, clip_index = _inputs(policy, group)
    with _training(policy, checkpoint):
        assert checkpointing(_decoder(policy)) == checkpoint
        loss_of = lambda logp: -(logp * mask).sum()  # noqa: E731
        _assert_equal(_scored(policy, True, batch, ids, clip_index, loss_of),
                      _scored(policy, False, batch, ids, clip_index, loss_of), mask)


@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "checkpointed"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("iterations", [1, 2])
def test_grpo_loss_gradients_equal_the_per_row_path(pair, iterations, beta, checkpoint):
    """The GRPO objective of one update: the reference's and (μ > 1) the rollout policy's log-probs scored by
    the same path as the policy's, the rollout policy one step behind the policy (μ > 1's later updates)."""
    policy, reference = pair
    batch, ids, mask, clip_index = _inputs(policy, 4)
    advantages = torch.linspace(-1.5, 1.5, len(clip_index))                                  # (N,)
    results = []
    for share in (True, False):
        with _training(policy, checkpoint), torch.no_grad():
            reference.share_prompts = policy.share_prompts = share
            ref_logp = reference.token_logprobs(batch, ids, clip_index) if beta > 0 else None
            old_logp = policy.token_logprobs(batch, ids, clip_index) + 0.05 if iterations > 1 else None
        reference.share_prompts = True
        loss_of = functools.partial(_grpo_loss, advantages=advantages, mask=mask, old_logp=old_logp,
                                    ref_logp=ref_logp, beta=beta)
        with _training(policy, checkpoint):
            results.append(_scored(policy, share, batch, ids, clip_index, loss_of))
    _assert_equal(*results, mask)


def _grpo_loss(logp, advantages, mask, old_logp, ref_logp, beta):
    # epsilon small enough that the shifted old log-probs put some ratios outside the clip range
    return policy_loss(logp, advantages, mask, old_logp=old_logp, ref_logp=ref_logp, beta=beta,
                       epsilon_low=0.02).loss


def test_checkpointed_sharing_recomputes_the_layers_in_the_backward(pair):
    """Under checkpointing the layers run again in the backward (so the saving of memory is real), and the
    prompt's keys / values still reach the prompt tokens: the media projector gets gradients."""
    policy, _ = pair
    batch, ids, mask, clip_index = _inputs(policy, 4)
    calls = []
    hook = _decoder(policy).layers[0].self_attn.register_forward_hook(lambda *args: calls.append(1))
    try:
        with _training(policy, checkpoint=True):
            logp = policy.token_logprobs(batch, ids, clip_index)                              # (N, C)
            forward_calls = len(calls)
            (-(logp * mask).sum()).backward()
    finally:
        hook.remove()
    assert forward_calls == 2 and len(calls) == 4      # prompt pass + completion pass, each replayed once
    grads = [p.grad for p in _model(policy).parameters() if p.grad is not None]
    assert grads
    _model(policy).zero_grad(set_to_none=True)


def test_reentrant_checkpointing_is_refused_with_the_fix(pair):
    policy, _ = pair
    batch, ids, _, clip_index = _inputs(policy, 1)
    with _training(policy, checkpoint=True, activation_checkpointing_kwargs={"use_reentrant": True}):
        with pytest.raises(ValueError, match="non-reentrant.*share_prompts=False"):
            policy.token_logprobs(batch, ids, clip_index)
        policy.share_prompts = False
        assert policy.token_logprobs(batch, ids, clip_index).shape == ids.shape


def test_no_layer_keeps_the_cache_permission_after_a_call(pair):
    policy, _ = pair
    batch, ids, _, clip_index = _inputs(policy, 1)
    with _training(policy, checkpoint=True):
        policy.token_logprobs(batch, ids, clip_index)
    assert not any("_can_checkpoint_with_cache" in vars(layer) for layer in _decoder(policy).layers)
