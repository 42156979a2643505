"""The decoding loop every model family shares, and the pieces that make it fast.

Profiled on the demo preset (64 rows, ~180 prompt tokens, 100 new tokens, 2 CPU threads), the
previous loop spent most of a rollout outside the model's arithmetic: transformers' ``DynamicCache``
grows by ``torch.cat`` at every step, so each step copies every layer's whole cache (quadratic in
the length), ``torch.multinomial`` over the full vocabulary costs more than the top-k it follows,
and a one-token step through transformers' modules pays for mask building, rotary tables and
keyword-deprecation wrappers on every layer (about a quarter of a step for this model; most of a
step for tiny ones). Here:

* :func:`decode` is the loop: the prompts are prefilled by the caller (once per clip), each step
  suppresses forbidden ids, picks the next tokens, records their log-probabilities under the
  untempered model when asked (what the trainer's scoring computes; GRPO scores again with
  gradients, so its rollouts skip it) and stops when every row has ended;
* :class:`PreallocatedLayer` is a ``DynamicLayer`` whose keys / values are views into buffers
  sized once for prompt + ``max_new_tokens``: a step writes one position and copies nothing.
  Attention still sees only the filled length (unlike transformers' ``StaticCache``, which attends
  over the whole buffer behind a mask and was slower here);
* :class:`Qwen2Step` is one decoding step of a Qwen2-architecture decoder (Qwen2, the Qwen2.5-Omni
  thinker's text model, HumanOmni's LLM) written out with the model's own weights, in the order
  transformers computes it, with the query / key / value and the gate / up projections stacked
  into one product each and fused RMSNorm; other decoders (Qwen3-Omni's MoE) step through their
  own forward;
* :func:`sample_tokens` draws from the top-k candidates only (then top-p among them), which is
  the distribution the logits warpers give, at a fraction of the cost.

``SamplingConfig.decoder = "reference"`` keeps the previous loop (growing cache, each step through
the model's forward, logits warpers, multinomial over the vocabulary), so the speed-up is measured
side by side, not remembered; greedy tokens are the same either way (tested).

Letters: N rows, V vocabulary, C new tokens, L cached positions, D hidden size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from r1omni.models.policy import SamplingConfig

__all__ = ["PreallocatedLayer", "preallocated_cache", "sample_tokens", "token_chooser", "decode", "Qwen2Step"]

# Key / value heads fewer than query heads are read in place (no repeated copy) from torch 2.5 on.
_SDPA_GQA = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)



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


def token_chooser(sampling: SamplingConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``choose(history (N, L), scores (N, V)) -> tokens (N,)`` for the configured decoder; ``history``
    (prompt and tokens so far) is read only by a repetition penalty."""
    penalty = (RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty)
               if sampling.repetition_penalty != 1.0 else None)
    if sampling.decoder == "fast":
        def choose(history: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return sample_tokens(scores if penalty is None else penalty(history, scores), sampling)
        return choose
    processors = LogitsProcessorList([penalty] if penalty is not None else [])
    if sampling.do_sample:
        if sampling.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_k > 0:
            processors.append(TopKLogitsWarper(sampling.top_k))
        if sampling.top_p < 1.0:
            processors.append(TopPLogitsWarper(sampling.top_p))

    def choose_reference(history: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = processors(history, scores)
        if sampling.do_sample:
            return torch.multinomial(F.softmax(scores, dim=-1), num_samples=1)[:, 0]
        return scores.argmax(dim=-1)
    return choose_reference


def decode(first_logits: torch.Tensor, step: Callable[[torch.Tensor, int], torch.Tensor], sampling: SamplingConfig,
           stop_ids: torch.Tensor, pad_id: int, prompt_ids: torch.Tensor,
           suppressed_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode up to ``sampling.max_new_tokens`` tokens per row after a prefill.

    ``first_logits`` (N, V) predict each row's first new token; ``step(tokens (N,), index)`` feeds the
    tokens chosen at step ``index`` (0-based) and returns the logits (N, V) of the next ones.
    ``prompt_ids`` (N, P) are what a repetition penalty reads besides the new tokens. A row ends at
    its first id of ``stop_ids`` and is padded with ``pad_id`` after it; ``suppressed_ids`` are never
    chosen. Returns the ids (N, C) and, when ``sampling.logprobs`` is set, each id's log-probability
    under the untempered model (N, C; else None), C being the steps taken (the loop stops when every
    row has ended).
    """
    choose = token_chooser(sampling)
    logits = first_logits
    stop_ids = stop_ids.to(logits.device)
    suppressed = suppressed_ids.to(logits.device) if suppressed_ids is not None else None
    prompt_len = prompt_ids.shape[1]
    history = None
    if sampling.repetition_penalty != 1.0:
        history = F.pad(prompt_ids, (0, sampling.max_new_tokens), value=pad_id)     # (N, P + max_new)
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)    # (N,)
    generated, logprobs = [], []
    for index in range(sampling.max_new_tokens):
        scores = logits.float()                                                      # (N, V)
        if sampling.logprobs:                                                        # before suppression,
            log_normaliser = scores.logsumexp(dim=-1)                                # as scoring computes it
        if suppressed is not None:
            scores[:, suppressed] = float("-inf")
        seen = history[:, :prompt_len + index] if history is not None else prompt_ids
        tokens = choose(seen, scores)                                                # (N,)
        if sampling.logprobs:
            logprobs.append(scores.gather(1, tokens[:, None])[:, 0] - log_normaliser)
        tokens = tokens.masked_fill(done, pad_id)
        generated.append(tokens)
        done = done | torch.isin(tokens, stop_ids)
        if bool(done.all()) or index == sampling.max_new_tokens - 1:
            break
        if history is not None:
            history[:, prompt_len + index] = tokens
        logits = step(tokens, index)
    return torch.stack(generated, dim=1), (torch.stack(logprobs, dim=1) if logprobs else None)  # (N, C), (N, C)


@dataclass(frozen=True)
class _LayerWeights:
    """One decoder layer's tensors, read from its modules once per rollout: a step then calls no module.
    The query / key / value projections are stacked into one matrix, and so are the gate and up
    projections, so a step runs four matrix products per layer instead of seven (the copies are taken
    when the step is built, after the last optimiser update)."""

    qkv: tuple
    o: tuple
    gate_up: tuple
    down: tuple
    scaling: float
    norm_in: nn.Module
    norm_post: nn.Module

    @staticmethod
    @torch.no_grad()
    def _stack(*linears: nn.Module) -> tuple:
        """One (weight, bias) for several linear maps of the same input; bias None when none has one."""
        weight = torch.cat([linear.weight for linear in linears])
        if all(linear.bias is None for linear in linears):
            return weight, None
        return weight, torch.cat([linear.bias if linear.bias is not None else weight.new_zeros(linear.out_features)
                                  for linear in linears])

    @classmethod
    def of(cls, layer: nn.Module) -> "_LayerWeights":
        attention, mlp = layer.self_attn, layer.mlp
        return cls(cls._stack(attention.q_proj, attention.k_proj, attention.v_proj),
                   (attention.o_proj.weight, attention.o_proj.bias), cls._stack(mlp.gate_proj, mlp.up_proj),
                   (mlp.down_proj.weight, mlp.down_proj.bias), attention.scaling, layer.input_layernorm,
                   layer.post_attention_layernorm)


class Qwen2Step:
    """One decoding step of a Qwen2-architecture decoder, written out with the decoder's own weights.

    Computes what the decoder's forward computes for one new token per row (RMSNorm in float32,
    rotary embedding, attention over the cache behind a key mask, SwiGLU MLP), in the same order,
    without rebuilding masks and rotary tables through the module stack at every step. Text
    positions only: a Qwen2.5-Omni M-RoPE position whose three components are equal (every text
    token after the media) is the plain rotary position. :meth:`supports` says whether a decoder is
    one this step reproduces; callers step other decoders through their forward.
    """

    LAYER_TYPES = ("Qwen2DecoderLayer", "Qwen2_5OmniDecoderLayer")
    ROTARY_TYPES = ("Qwen2RotaryEmbedding", "Qwen2_5OmniRotaryEmbedding")

    @classmethod
    def supports(cls, decoder: nn.Module) -> bool:
        config = getattr(decoder, "config", None)
        layers = getattr(decoder, "layers", None)
        if config is None or not layers or type(getattr(decoder, "rotary_emb", None)).__name__ not in cls.ROTARY_TYPES:
            return False
        rope = getattr(config, "rope_parameters", None) or {}
        return (all(type(layer).__name__ in cls.LAYER_TYPES for layer in layers)
                and set(getattr(config, "layer_types", None) or ["full_attention"]) == {"full_attention"}
                and rope.get("rope_type", "default") == "default"
                and getattr(config, "hidden_act", None) == "silu"
                and all(getattr(layer.self_attn, "sliding_window", None) is None for layer in layers))

    def __init__(self, decoder: nn.Module, cache: Cache, key_mask: torch.Tensor) -> None:
        """``cache``: the prefilled cache, one :class:`PreallocatedLayer` per layer; ``key_mask`` (N, L_max)
        True where a row may attend (its real prompt positions, then every new position)."""
        if not self.supports(decoder):
            raise ValueError(f"{type(decoder).__name__} is not a Qwen2-architecture decoder this step reproduces")
        self.decoder, self.cache = decoder, cache
        # The mask as the additive bias SDPA turns a boolean mask into, built once: the same numbers
        # (tested), without a conversion per layer and step.
        self.key_bias = torch.zeros(key_mask.shape, dtype=decoder.embed_tokens.weight.dtype, device=key_mask.device
                                    ).masked_fill(~key_mask.bool(), float("-inf"))[:, None, None]  # (N, 1, 1, L_max)
        config = decoder.config
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = decoder.layers[0].self_attn.head_dim
        self.inv_freq = decoder.rotary_emb.inv_freq.float()
        self.rotary_scale = decoder.rotary_emb.attention_scaling
        self.rotary_table: tuple[torch.Tensor, torch.Tensor] | None = None   # built at the first step
        self.layers = [_LayerWeights.of(layer) for layer in decoder.layers]

    @staticmethod
    def _norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """The decoder's RMSNorm (float32 inside, as transformers computes it) as one fused call."""
        return norm.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=norm.variance_epsilon).to(x.dtype)

    def _rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin (N, 1, D_h) of ``positions``, looked up in a table of every position this
        rollout can reach (the first step's farthest position plus the cache's capacity), computed once with
        the decoder's arithmetic; the sine's first half is negated so that :meth:`_rotate` needs no
        negation (-a * b equals a * -b exactly)."""
        if self.rotary_table is None:
            reach = int(positions.max()) + self.cache.layers[0].capacity + 1
            freqs = torch.arange(reach, device=positions.device).float()[:, None] * self.inv_freq.to(positions.device)
            angles = torch.cat((freqs, freqs), dim=-1)                                   # (reach, D_h)
            cos = (angles.cos() * self.rotary_scale).to(dtype)
            sin = (angles.sin() * self.rotary_scale).to(dtype)
            half = self.head_dim // 2
            self.rotary_table = cos, torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)
        cos, signed_sin = self.rotary_table
        return cos[positions][:, None], signed_sin[positions][:, None]                   # (N, 1, D_h) each

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        """x·cos + rotate_half(x)·sin, rotate_half(x) = (-x₂, x₁) written as roll(x) times the signed sine."""
        return x * cos + x.roll(self.head_dim // 2, dims=-1) * signed_sin

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float) -> torch.Tensor:
        """One query per row over the cached keys, behind the key mask; each query head reads its key /
        value head in place (torch >= 2.5) or from a repeated copy."""
        mask = self.key_bias[..., :keys.shape[2]].to(q.dtype)                              # (N, 1, 1, L)
        if self.num_heads == self.num_kv_heads:
            return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)
        if _SDPA_GQA:
            return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale, enable_gqa=True)
        groups = self.num_heads // self.num_kv_heads
        return F.scaled_dot_product_attention(q, keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1),
                                              attn_mask=mask, scale=scale)                # (N, H, 1, D_h)

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Hidden states (N, D) after the final norm for ``tokens`` (N,) at ``positions`` (N,)."""
        rows, heads, kv_heads = tokens.shape[0], self.num_heads, self.num_kv_heads
        x = self.decoder.embed_tokens(tokens)                                            # (N, D)
        cos, signed_sin = self._rotary(positions, x.dtype)                                # (N, 1, D_h) each
        for w, cache_layer in zip(self.layers, self.cache.layers):
            projected = F.linear(self._norm(x, w.norm_in), *w.qkv).view(rows, heads + 2 * kv_heads, self.head_dim)
            rotated = self._rotate(projected[:, :heads + kv_heads], cos, signed_sin)      # (N, H + H_kv, D_h)
            q, k = rotated[:, :heads, None], rotated[:, heads:, None]                     # (N, H | H_kv, 1, D_h)
            keys, values = cache_layer.update(k, projected[:, heads + kv_heads:, None])  # (N, H_kv, L, D_h)
            out = self._attend(q, keys, values, w.scaling)                               # (N, H, 1, D_h)
            x = x + F.linear(out.reshape(rows, heads * self.head_dim), *w.o)
            gate, up = F.linear(self._norm(x, w.norm_post), *w.gate_up).chunk(2, dim=-1)  # (N, I) each
            x = x + F.linear(F.silu(gate) * up, *w.down)                                  # (N, D)
        return self._norm(x, self.decoder.norm)                                          # (N, D)
