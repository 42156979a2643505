"""Log-probabilities of chosen tokens without the full-vocabulary tensors: what scoring needs of the LM head.

Scoring G completions of C tokens needs ``log softmax(logits)[token]`` at N x C positions, but the logits
behind it are (N, C, V) with V ~152k for Qwen: at the paper's G = 8 and C = 512 that is 1.2 GB in bfloat16,
and the float32 copy softmax wants another 2.5 GB, both kept for the backward pass. Here the LM head runs a
few rows at a time, in float32 per chunk, and under autograd each chunk is checkpointed: its logits are
freed after the forward and recomputed in the backward, so at most one chunk's logits exist at any time.
The values are the full computation's (each row's log-softmax is its own); the price is one more LM-head
matmul per chunk in the backward. Scoring that fits in one chunk (a small vocabulary, the embedded demo's)
runs as one plain computation, unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["head_logprobs", "selected_logprobs", "CHUNK_ELEMENTS"]

CHUNK_ELEMENTS = 2 ** 26
"""Logits that may exist at once (256 MiB in float32): as many whole rows as fit, at least one (a row of 512
tokens at V = 152k is 78M, so the paper's scoring goes row by row)."""


def selected_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[ids]`` (N, C) of logits (N, C, V) already computed, row by row in float32, so the
    float32 copy of the whole is never made."""
    return torch.cat([_picked(row[None], row_ids[None]) for row, row_ids in zip(logits, ids)]) if len(ids) \
        else logits.new_zeros(ids.shape, dtype=torch.float32)


def head_logprobs(hidden: torch.Tensor, head: nn.Module, ids: torch.Tensor,
                  rows_per_chunk: int | None = None) -> torch.Tensor:
    """``log softmax(head(hidden))[ids]`` (N, C) of hidden states (N, C, D) through the LM head ``head``,
    ``rows_per_chunk`` rows at a time (default: as many as :data:`CHUNK_ELEMENTS` allows); checkpointed per
    chunk when gradients flow and there is more than one chunk."""
    num_rows = ids.shape[0]
    if rows_per_chunk is None:
        rows_per_chunk = max(1, CHUNK_ELEMENTS // max(1, ids.shape[1] * head.out_features))
    if num_rows <= rows_per_chunk:
        return _head_chunk(hidden, ids, head)
    chunks = []
    for start in range(0, ids.shape[0], rows_per_chunk):
        part, part_ids = hidden[start:start + rows_per_chunk], ids[start:start + rows_per_chunk]
        if torch.is_grad_enabled() and (part.requires_grad or any(p.requires_grad for p in head.parameters())):
            chunks.append(checkpoint(_head_chunk, part, part_ids, head, use_reentrant=False))
        else:
            chunks.append(_head_chunk(part, part_ids, head))
    return torch.cat(chunks) if chunks else hidden.new_zeros(ids.shape, dtype=torch.float32)


def _head_chunk(hidden: torch.Tensor, ids: torch.Tensor, head: nn.Module) -> torch.Tensor:
    return _picked(head(hidden), ids)


def _picked(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    logits = logits.float()                                                          # (n, C, V)
    return logits.gather(-1, ids[..., None])[..., 0] - logits.logsumexp(dim=-1)      # (n, C)
