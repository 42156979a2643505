"""Pieces of the fast decoding path shared by the model families: a pre-sized KV cache and a sampler.

Profiled on the demo preset (64 rows, ~180 prompt tokens, 100 new tokens, 2 CPU threads), the
previous loop spent most of a rollout outside the model's arithmetic: transformers' ``DynamicCache``
grows by ``torch.cat`` at every step, so each step copies every layer's whole cache (quadratic in
the length), and ``torch.multinomial`` over the full vocabulary costs more than the top-k it
follows. Here:

* :class:`PreallocatedLayer` is a ``DynamicLayer`` whose keys / values are views into buffers
  sized once for prompt + ``max_new_tokens``: a step writes one position and copies nothing.
  Attention still sees only the filled length (unlike transformers' ``StaticCache``, which attends
  over the whole buffer behind a mask and was slower here).
* :func:`sample_tokens` draws from the top-k candidates only (then top-p among them), which is
  the distribution the logits warpers give, at a fraction of the cost.

``SamplingConfig.decoder = "reference"`` keeps the previous loop (growing cache, logits warpers,
multinomial over the vocabulary), so the speed-up is measured side by side, not remembered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, DynamicLayer

from r1omni.models.policy import SamplingConfig

__all__ = ["PreallocatedLayer", "preallocated_cache", "sample_tokens"]


class PreallocatedLayer(DynamicLayer):
    """A cache layer with room for ``capacity`` positions, allocated at its first update."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.filled = 0
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._key_buffer is None:
            self.lazy_initialization(key_states, value_states)
            rows, heads, _, _ = key_states.shape
            self._key_buffer = key_states.new_empty(rows, heads, self.capacity, key_states.shape[-1])
            self._value_buffer = value_states.new_empty(rows, heads, self.capacity, value_states.shape[-1])
        end = self.filled + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} positions needed, {self.capacity} allocated")
        self._key_buffer[:, :, self.filled:end] = key_states
        self._value_buffer[:, :, self.filled:end] = value_states
        self.filled = end
        self.keys = self._key_buffer[:, :, :end]
        self.values = self._value_buffer[:, :, :end]
        return self.keys, self.values


def preallocated_cache(prefill: Cache, repeats: int, new_tokens: int) -> Cache:
    """A cache holding each row of ``prefill`` ``repeats`` times (rows of one prompt contiguous), with room
    for ``new_tokens`` more positions per row."""
    layers = []
    for source in prefill.layers:
        layer = PreallocatedLayer(source.get_seq_length() + new_tokens)
        layer.update(source.keys.repeat_interleave(repeats, dim=0), source.values.repeat_interleave(repeats, dim=0))
        layers.append(layer)
    return Cache(layers=layers)


def sample_tokens(scores: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Next tokens (N,) from float scores (N, V) whose forbidden entries are already -inf.

    Greedy takes the argmax. Sampling divides by the temperature, keeps the top-k (all when
    ``top_k`` is 0), then the smallest prefix of them whose probability reaches ``top_p``, and draws
    among those candidates with the global torch generator.
    """
    if not sampling.do_sample:
        return scores.argmax(dim=-1)
    scores = scores / sampling.temperature
    if 0 < sampling.top_k < scores.shape[-1]:
        values, candidates = scores.topk(sampling.top_k, dim=-1)  # (N, k), descending
    else:
        values, candidates = scores.sort(dim=-1, descending=True)  # (N, V)
    if sampling.top_p < 1.0:
        probs = F.softmax(values, dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # (N, k); the first candidate always stays
        values = values.masked_fill(mass_before >= sampling.top_p, float("-inf"))
    pick = torch.multinomial(F.softmax(values, dim=-1), num_samples=1)  # (N, 1)
    return candidates.gather(1, pick)[:, 0]  # (N,)
