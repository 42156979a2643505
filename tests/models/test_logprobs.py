"""Scoring through the LM head a chunk of rows at a time (``r1omni.models.logprobs``): the same values and
gradients as the whole (N, C, V) computation, and under autograd nothing of the size of the whole logits is
kept for the backward pass (issue #30: the float32 copy alone was ~2.5 GB at the paper's settings)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from r1omni.models.logprobs import head_logprobs, selected_logprobs

N, C, D, V = 4, 6, 8, 50


def whole(hidden: torch.Tensor, head: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return logits.gather(-1, ids[..., None])[..., 0] - logits.logsumexp(-1)


@pytest.fixture
def inputs():
    torch.manual_seed(0)
    head = nn.Linear(D, V, bias=False)
    return torch.randn(N, C, D, requires_grad=True), head, torch.randint(0, V, (N, C))


@pytest.mark.parametrize("rows", [1, 3, N])
def test_chunked_scoring_gives_the_whole_computations_values_and_gradients(inputs, rows):
    hidden, head, ids = inputs
    expected = whole(hidden, head, ids)
    weights = torch.randn(N, C)
    want = torch.autograd.grad((expected * weights).sum(), [hidden, head.weight])
    got_values = head_logprobs(hidden, head, ids, rows_per_chunk=rows)
    got = torch.autograd.grad((got_values * weights).sum(), [hidden, head.weight])
    torch.testing.assert_close(got_values, expected, rtol=1e-6, atol=1e-6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(selected_logprobs(head(hidden), ids), expected, rtol=1e-6, atol=1e-6)


def test_no_tensor_of_the_whole_logits_size_is_kept_for_backward(inputs):
    hidden, head, ids = inputs
    saved: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        chunked = head_logprobs(hidden, head, ids, rows_per_chunk=1)
    largest_chunked = max(saved)
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        whole(hidden, head, ids)
    assert max(saved) >= N * C * V                 # the hook sees what the plain computation keeps
    assert largest_chunked < C * V                 # chunked: not even one row's logits stay
    chunked.sum().backward()                       # and the recomputation in backward works
    assert hidden.grad is not None and head.weight.grad is not None


def test_bfloat16_heads_are_scored_in_float32(inputs):
    hidden, head, ids = inputs
    head = head.to(torch.bfloat16)
    with torch.no_grad():
        got = head_logprobs(hidden.detach().bfloat16(), head, ids)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, whole(hidden.detach().bfloat16(), head, ids))
