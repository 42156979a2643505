"""Shared-prefix scoring: each clip's prompt through the language model once, its G completions on top.

GRPO scores the G completions of a clip (policy with gradients, reference without) against the
same prompt, and an omni prompt (hundreds to thousands of video and audio tokens) is far longer
than a completion. Running each row as prompt + completion pays the prompt G times;
:func:`shared_prefix_hidden` runs the B prompts once, keeps every layer's keys / values (still in
the autograd graph), indexes them to the N rows and runs only the completions, which attend to
their prompt (left padding masked) and causally to themselves, at positions that continue after
their prompt. Autograd sums the G rows' gradients back into the one prompt pass (indexing is a
gather, whose backward is a scatter-add), so log-probabilities and gradients equal the per-row
forward's (tested for both families, with and without activation checkpointing). Both model
families score through this one function: ``qwen_omni.SharedMediaThinker`` and
``HumanOmniForCausalLM``.

Activation checkpointing. transformers' checkpointed layers drop any KV cache, because a cache that
grows by concatenation would grow again when the backward replays the layer. The two caches here
never grow: :class:`PromptKeys` *replaces* its keys / values with the layer's (the replay writes
the same tensors again) and :class:`RowKeys` only reads them, so the layers may keep them
(``_can_checkpoint_with_cache``, set for the call only). The prompt pass and the completion pass
are then checkpointed layer by layer like any forward; the prompt's keys / values are recomputed
in the backward from the layer's saved input. This needs the non-reentrant checkpoint
(transformers' default): the reentrant one runs the forward without gradients, so the keys / values
would leave the graph; :func:`shared_prefix_hidden` refuses it with a message.

Not here: packing the G completions into one row with a block mask (costlier attention at these
sizes, see ``shared/notes/levers-2026-12.md`` section 1), the media encoders (each family embeds its
prompts), the language-model head.

Letters: B clips (prompts), N rows, P prompt length, C completion length, D hidden size,
H key / value heads, D_h head size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicLayer

from r1omni.models.kv_cache import cache_parameter

__all__ = ["shared_prefix_hidden", "PromptKeys", "RowKeys", "checkpointing"]

_UNSET = object()


class PromptKeys(DynamicLayer):
    """One layer's prompt keys / values, as the layer computed them: ``update`` replaces, never appends, so a
    checkpointed layer replayed in the backward leaves the same (B, H, P, D_h) tensors behind."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return key_states, value_states


class RowKeys(DynamicLayer):
    """A completion pass's view of one :class:`PromptKeys`: ``update`` returns each row's prompt keys / values
    (row n reads prompt ``rows[n]``) followed by the row's own, and stores nothing, so a replay reads the same."""

    def __init__(self, prompt: PromptKeys, rows: torch.Tensor) -> None:
        super().__init__()
        self.prompt, self.rows = prompt, rows
        self.keys, self.values, self.is_initialized = prompt.keys, prompt.values, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.cat([self.prompt.keys[self.rows], key_states], dim=-2)          # (N, H, P+C, D_h)
        values = torch.cat([self.prompt.values[self.rows], value_states], dim=-2)    # (N, H, P+C, D_h)
        return keys, values


def checkpointing(decoder: nn.Module) -> bool:
    """Whether a forward of ``decoder`` now checkpoints its layers (transformers' activation checkpointing
    is on, the layers train and gradients are recorded)."""
    return torch.is_grad_enabled() and any(getattr(layer, "gradient_checkpointing", False) and layer.training
                                           for layer in decoder.layers)


@contextmanager
def _caches_kept(decoder: nn.Module) -> Iterator[None]:
    """Let checkpointed layers keep the two caches above for the duration of one scoring call."""
    layers = [layer for layer in decoder.layers if getattr(layer, "gradient_checkpointing", False)]
    if not checkpointing(decoder):
        yield
        return
    if not hasattr(type(layers[0]), "_can_checkpoint_with_cache"):
        raise RuntimeError("shared-prefix scoring under activation checkpointing needs transformers >= 5.25 "
                           "(layers that may keep a KV cache); upgrade, or set share_prompts=False")
    for layer in layers:
        function = getattr(layer, "_gradient_checkpointing_func", None)
        if not (isinstance(function, functools.partial) and function.keywords.get("use_reentrant") is False):
            raise ValueError("shared-prefix scoring under activation checkpointing needs the non-reentrant "
                             "checkpoint (the reentrant one drops the prompt's keys / values from the graph): "
                             "enable it with activation_checkpointing_kwargs={'use_reentrant': False} (the "
                             "default), or set share_prompts=False")
    previous = [layer.__dict__.get("_can_checkpoint_with_cache", _UNSET) for layer in layers]
    for layer in layers:
        layer._can_checkpoint_with_cache = True       # on the instance, for this call; the class keeps False
    try:
        yield
    finally:
        for layer, value in zip(layers, previous):
            if value is _UNSET:
                del layer._can_checkpoint_with_cache
            else:
                layer._can_checkpoint_with_cache = value


def shared_prefix_hidden(decoder: nn.Module, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor,
                         prompt_positions: torch.Tensor, completion_embeds: torch.Tensor,
                         completion_positions: torch.Tensor, rows: torch.Tensor,
                         prompt_kwargs: dict[str, Any] | None = None) -> torch.Tensor:
    """Final hidden states (N, C, D) that predict the N completions' tokens, the B prompts run once.

    ``decoder`` is a transformers decoder stack (``Qwen2Model``, a Qwen-Omni thinker's text model) called
    with ``inputs_embeds``. ``prompt_embeds`` (B, P, D) are LEFT-padded (``prompt_mask`` (B, P)) at
    ``prompt_positions`` (any layout the decoder reads, e.g. (B, P) or M-RoPE's (3, B, P));
    ``completion_embeds`` (N, C, D) sit at ``completion_positions`` (the same layout with N rows), row n
    continuing prompt ``rows[n]``. ``prompt_kwargs`` go to the prompt pass only (Qwen3's DeepStack).
    Row n's first completion token is predicted by its prompt's last position, token c + 1 by token c.
    """
    num_layers = len(decoder.layers)
    key = cache_parameter(type(decoder).forward)
    prompt_cache = Cache(layers=[PromptKeys() for _ in range(num_layers)])
    attention_mask = torch.cat([prompt_mask[rows], prompt_mask.new_ones(completion_embeds.shape[:2])], 1)  # (N, P+C)
    with _caches_kept(decoder):
        prompt_hidden = decoder(inputs_embeds=prompt_embeds, attention_mask=prompt_mask, position_ids=prompt_positions,
                                use_cache=False, **{key: prompt_cache},
                                **(prompt_kwargs or {})).last_hidden_state                     # (B, P, D)
        row_cache = Cache(layers=[RowKeys(layer, rows) for layer in prompt_cache.layers])
        completion_hidden = decoder(inputs_embeds=completion_embeds, attention_mask=attention_mask,
                                    position_ids=completion_positions, use_cache=False,
                                    **{key: row_cache}).last_hidden_state                      # (N, C, D)
    return torch.cat([prompt_hidden[rows, -1:], completion_hidden[:, :-1]], dim=1)              # (N, C, D)
