"""THE decoding loop: every model family's ``generate`` is this loop with two hooks of its own.

A family supplies what differs and nothing else (:class:`Decodable`):

* ``prefill(batch) -> Prefill`` runs the B prompts once (media encoded once per clip) and returns
  the logits of each prompt's first new token, its KV cache, key mask and next text position;
* ``stepper(cache, key_mask, next_position) -> step`` turns a cache of N rows into
  ``step(tokens (N,), index) -> logits (N, V)``: :func:`qwen2_stepper` when :class:`Qwen2Step`
  reproduces the family's decoder (Qwen2.5-Omni's text model, HumanOmni's LLM), the family's own
  module forward otherwise (Qwen3-Omni's MoE).

:func:`generate` does the rest, once for every family: no gradients and the module in eval mode
(each submodule's mode restored after), greedy rows decoded once per clip then repeated, the
prefill's cache repeated G times into a pre-sized cache, :func:`decode`, then :func:`completions`:
:func:`cut_at_stop` (one algorithm for one or several stop ids), the texts and ``clip_index``.
:func:`encode_completions` is the one way target texts become ids. Every tensor :func:`generate`
returns is on the model's device; :func:`encode_completions` returns CPU tensors (see
:mod:`r1omni.models.policy`).

Why this loop is fast. Profiled on the demo preset (64 rows, ~180 prompt tokens, 100 new tokens,
2 CPU threads), the earlier loop spent most of a rollout outside the model's arithmetic:
transformers' ``DynamicCache`` grows by ``torch.cat`` at every step, so each step copies every
layer's whole cache (quadratic in the length), ``torch.multinomial`` over the full vocabulary
costs more than the top-k it follows, and a one-token step through transformers' modules pays for
mask building, rotary tables and keyword-deprecation wrappers on every layer (about a quarter of a
step for this model; most of a step for tiny ones). Here:

* :func:`decode` suppresses forbidden ids, picks the next tokens, records their log-probabilities
  under the untempered model when asked (what the trainer's scoring computes; GRPO scores again
  with gradients, so its rollouts skip it) and stops when every row has ended;
* :class:`PreallocatedLayer` is a ``DynamicLayer`` whose keys / values are views into buffers
  sized once for prompt + ``max_new_tokens``: a step writes one position and copies nothing.
  Attention still sees only the filled length (unlike transformers' ``StaticCache``, which attends
  over the whole buffer behind a mask and was slower here);
* :class:`Qwen2Step` is one decoding step of a Qwen2-architecture decoder written out with the
  model's own weights, in the order transformers computes it, with the query / key / value and the
  gate / up projections stacked into one product each and fused RMSNorm;
* :func:`sample_tokens` draws from the top-k candidates only (then top-p among them), which is
  the distribution the logits warpers give, at a fraction of the cost.

Not here: the earlier loop (growing cache, transformers' logits warpers, multinomial over the
vocabulary). ``benchmarks/grpo_step.py`` carries it to measure the speed-up against; greedy tokens
are tested against transformers' ``generate`` in each family's tests.

Letters: B clips, G completions per clip, N rows (B*G), V vocabulary, C new tokens, P prompt
length, L cached positions, D hidden size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from r1omni.models.lora import effective_linear
from r1omni.models.policy import Completions, PreparedBatch, SamplingConfig

__all__ = ["Prefill", "Vocabulary", "Decodable", "Step", "generate", "decode", "completions", "cut_at_stop",
           "encode_completions", "evaluating", "qwen2_stepper", "PreallocatedLayer", "preallocated_cache",
           "sample_tokens", "Qwen2Step"]

# Key / value heads fewer than query heads are read in place (no repeated copy) from torch 2.5 on.
_SDPA_GQA = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)

Step = Callable[[torch.Tensor, int], torch.Tensor]
"""``step(tokens (N,), index) -> logits (N, V)``: feed the tokens chosen at step ``index`` (0-based)."""


@dataclass
class Prefill:
    """The B prompts after one forward: what a family's ``prefill`` hands the loop."""

    first_logits: torch.Tensor   # (B, V) predict each prompt's first new token
    cache: Cache                 # the B prompts' keys / values (P positions)
    key_mask: torch.Tensor       # (B, P) 1 at a prompt's real positions, 0 at its left padding
    next_position: torch.Tensor  # (B,) text position of the first new token
    history: torch.Tensor        # (B, H) ids a repetition penalty reads besides the new tokens (H may be 0)


@dataclass(frozen=True)
class Vocabulary:
    """The ids decoding treats specially, and the tokenizer that turns the rest into text."""

    tokenizer: Any
    stop_ids: tuple[int, ...]                # a row ends at its first one of these (kept, masked in)
    pad_id: int                              # fills a row after its stop
    suppressed_ids: torch.Tensor | None = None  # never chosen (media placeholders, undecodable ids)


class Decodable(Protocol):
    """The two hooks a family implements for :func:`generate`."""

    def prefill(self, batch: PreparedBatch) -> Prefill: ...

    def stepper(self, cache: Cache, key_mask: torch.Tensor, next_position: torch.Tensor) -> Step:
        """``cache`` and ``key_mask`` (N, P + max_new_tokens) hold N rows; ``next_position`` (N,)."""
        ...


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) inside, each submodule's own mode restored after, whatever happens."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for child, training in modes:
            child.training = training


def generate(family: Decodable, module: nn.Module, batch: PreparedBatch, num_return_sequences: int,
             sampling: SamplingConfig | None, vocabulary: Vocabulary) -> Completions:
    """``num_return_sequences`` completions per clip of ``batch`` (already on the model's device), rows of
    one clip contiguous; ``module`` (the family's bare model) runs in eval mode without gradients."""
    sampling = sampling or SamplingConfig()
    if num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be >= 1, got {num_return_sequences}")
    # Greedy rows of one clip are identical: decode one per clip, then repeat it.
    repeat = num_return_sequences if not sampling.do_sample else 1
    with torch.no_grad(), evaluating(module):
        ids, logprobs = _decode_rows(family, batch, num_return_sequences // repeat, sampling, vocabulary)  # (N, C')
    if logprobs is not None:
        logprobs = logprobs.repeat_interleave(repeat, dim=0)
    return completions(ids.repeat_interleave(repeat, dim=0), logprobs, num_return_sequences, vocabulary)


def completions(ids: torch.Tensor, logprobs: torch.Tensor | None, group: int, vocabulary: Vocabulary
                ) -> Completions:
    """:class:`Completions` from the raw new ids (N, C') of B clips x ``group`` rows (and their log-probs):
    cut at each row's first stop, log-probs zero after it, texts without special tokens, ``clip_index``."""
    ids, mask = cut_at_stop(ids, vocabulary.stop_ids, vocabulary.pad_id)                     # (N, C)
    if logprobs is not None:
        logprobs = logprobs[:, :ids.shape[1]].masked_fill(mask == 0, 0.0)                    # (N, C)
    texts = vocabulary.tokenizer.batch_decode([row[:int(n)] for row, n in zip(ids.tolist(), mask.sum(1).tolist())],
                                              skip_special_tokens=True)
    clip_index = torch.arange(ids.shape[0] // group, device=ids.device).repeat_interleave(group)  # (N,)
    return Completions(ids, mask, texts, clip_index, logprobs)


def _decode_rows(family: Decodable, batch: PreparedBatch, group: int, sampling: SamplingConfig,
                 vocabulary: Vocabulary) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Prefill the B prompts once, repeat the cache ``group`` times into a pre-sized one, decode."""
    start = family.prefill(batch)
    cache = preallocated_cache(start.cache, group, sampling.max_new_tokens, sampling.static_shapes)
    # Prompt, then room for every new token; the token fed at step s sees the first P + s + 1 columns.
    key_mask = F.pad(start.key_mask.repeat_interleave(group, dim=0), (0, sampling.max_new_tokens), value=1)
    step = family.stepper(cache, key_mask, start.next_position.repeat_interleave(group))
    return decode(start.first_logits.repeat_interleave(group, dim=0), step, sampling,
                  stop_ids=torch.tensor(vocabulary.stop_ids), pad_id=vocabulary.pad_id,
                  prompt_ids=start.history.repeat_interleave(group, dim=0), suppressed_ids=vocabulary.suppressed_ids)


def cut_at_stop(ids: torch.Tensor, stop_ids: tuple[int, ...], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids (N, C) and mask (N, C) up to and including each row's first stop id, ``pad_id`` after it;
    columns no row reaches are dropped (at least one column stays)."""
    is_stop = torch.isin(ids, torch.tensor(stop_ids, device=ids.device))                 # (N, C')
    after_stop = (is_stop.long().cumsum(1) - is_stop.long()) > 0                          # (N, C')
    mask = (~after_stop).long()                                                          # (N, C')
    ids = ids.masked_fill(after_stop, pad_id)
    width = max(int(mask.sum(1).max()), 1)
    return ids[:, :width], mask[:, :width]                                               # (N, C)


def encode_completions(tokenizer: Any, texts: list[str], end_id: int, pad_id: int,
                       forbidden_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Target texts -> CPU ids (N, C) right-padded with ``pad_id`` and mask (N, C), ``end_id`` appended to
    each; a text that tokenises to one of ``forbidden_ids`` (media tokens) is refused, naming them."""
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [end_id]
        bad = set(ids) & set(forbidden_ids.tolist()) if forbidden_ids is not None else set()
        if bad:
            names = tokenizer.convert_ids_to_tokens(sorted(bad))
            raise ValueError(f"completion text contains media tokens {names}: {text[:80]!r}")
        rows.append(ids)
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows], dtype=torch.long)    # (N, C)
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], dtype=torch.long)  # (N, C)
    return ids, mask


def qwen2_stepper(decoder: nn.Module, head: nn.Module, cache: Cache, key_mask: torch.Tensor,
                  next_position: torch.Tensor) -> Step | None:
    """The :class:`Qwen2Step` step (then ``head``) for ``decoder``, or None when it is not a decoder that
    :class:`Qwen2Step` reproduces (the family then steps through its module's forward)."""
    if not Qwen2Step.supports(decoder):
        return None
    lean = Qwen2Step(decoder, cache, key_mask)
    return lambda tokens, index: head(lean(tokens, next_position + index))              # (N, V)


class PreallocatedLayer(DynamicLayer):
    """A cache layer with room for ``capacity`` positions, allocated (zeroed) at its first update.

    ``static``: the decoding step writes through :meth:`write_at` and reads the whole buffer (static shapes,
    ``SamplingConfig.static_shapes``); the buffer is zeroed so the positions not yet written, which the step's
    mask hides, hold no NaN that a zero attention weight would turn into one."""

    def __init__(self, capacity: int, static: bool = False) -> None:
        super().__init__()
        self.capacity = capacity
        self.static = static
        self.filled = 0
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._key_buffer is None:
            self.lazy_initialization(key_states, value_states)
            rows, heads, _, _ = key_states.shape
            self._key_buffer = key_states.new_zeros(rows, heads, self.capacity, key_states.shape[-1])
            self._value_buffer = value_states.new_zeros(rows, heads, self.capacity, value_states.shape[-1])
        end = self.filled + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} positions needed, {self.capacity} allocated")
        self._key_buffer[:, :, self.filled:end] = key_states
        self._value_buffer[:, :, self.filled:end] = value_states
        self.filled = end
        self.keys = self._key_buffer[:, :, :end]
        self.values = self._value_buffer[:, :, :end]
        return self.keys, self.values

    def write_at(self, position: torch.Tensor, key_states: torch.Tensor, value_states: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one position (``position``: a 1-element tensor on the buffer's device, not a host number, so
        that a captured step replays with the current one) and return the whole buffers (N, H_kv, capacity,
        D_h). ``filled`` and ``keys`` are not kept up to date: only the step that owns the position reads."""
        self._key_buffer.index_copy_(2, position, key_states)
        self._value_buffer.index_copy_(2, position, value_states)
        return self._key_buffer, self._value_buffer


def preallocated_cache(prefill: Cache, repeats: int, new_tokens: int, static: bool = False) -> Cache:
    """A cache holding each row of ``prefill`` ``repeats`` times (rows of one prompt contiguous), with room
    for ``new_tokens`` more positions per row (``static``: see :class:`PreallocatedLayer`)."""
    layers = []
    for source in prefill.layers:
        layer = PreallocatedLayer(source.get_seq_length() + new_tokens, static)
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


def _chooser(sampling: SamplingConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``choose(history (N, L), scores (N, V)) -> tokens (N,)``; ``history`` (prompt and tokens so far) is
    read only by a repetition penalty."""
    penalty = (RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty)
               if sampling.repetition_penalty != 1.0 else None)

    def choose(history: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return sample_tokens(scores if penalty is None else penalty(history, scores), sampling)
    return choose


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
    row has ended; it asks every ``sampling.sync_every`` steps and trims what it decoded past that point).
    """
    choose = _chooser(sampling)
    logits = first_logits
    stop_ids = stop_ids.to(logits.device)
    suppressed = suppressed_ids.to(logits.device) if suppressed_ids is not None else None
    prompt_len = prompt_ids.shape[1]
    history = None
    if sampling.repetition_penalty != 1.0:
        history = F.pad(prompt_ids, (0, sampling.max_new_tokens), value=pad_id)     # (N, P + max_new)
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)    # (N,)
    generated, logprobs, all_done = [], [], []
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
        all_done.append(done.all())
        if index == sampling.max_new_tokens - 1 or ((index + 1) % sampling.sync_every == 0 and bool(all_done[-1])):
            break
        if history is not None:
            history[:, prompt_len + index] = tokens
        logits = step(tokens, index)
    # The steps taken by a loop that asks at every step: up to the first at which every row had ended.
    ended = torch.stack(all_done)                                                    # (steps,)
    steps = int(ended.int().argmax()) + 1 if bool(ended.any()) else len(generated)
    ids = torch.stack(generated[:steps], dim=1)                                      # (N, C)
    return ids, (torch.stack(logprobs[:steps], dim=1) if logprobs else None)         # (N, C), (N, C)


@dataclass(frozen=True)
class _LayerWeights:
    """One decoder layer's tensors, read from its modules once per rollout: a step then calls no module.
    The query / key / value projections are stacked into one matrix, and so are the gate and up
    projections, so a step runs four matrix products per layer instead of seven (the copies are taken
    when the step is built, after the last optimiser update). Each map's weight is the one it applies
    (:func:`r1omni.models.lora.effective_linear`): under LoRA, ``q_proj.weight`` is peft's frozen base
    weight, and reading it alone would decode the base model, not the policy."""

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
        maps = [effective_linear(linear) for linear in linears]
        if len(maps) == 1:
            return maps[0]
        weight = torch.cat([w for w, _ in maps])
        if all(b is None for _, b in maps):
            return weight, None
        return weight, torch.cat([b if b is not None else w.new_zeros(w.shape[0]) for w, b in maps])

    @classmethod
    def of(cls, layer: nn.Module) -> "_LayerWeights":
        attention, mlp = layer.self_attn, layer.mlp
        return cls(cls._stack(attention.q_proj, attention.k_proj, attention.v_proj), cls._stack(attention.o_proj),
                   cls._stack(mlp.gate_proj, mlp.up_proj), cls._stack(mlp.down_proj), attention.scaling,
                   layer.input_layernorm, layer.post_attention_layernorm)


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
        first = cache.layers[0]
        self.static = bool(getattr(first, "static", False))
        if self.static:   # the next position to write, on the device; the columns, to hide the unwritten ones
            self.position = torch.tensor([first.filled], device=key_mask.device)
            self.columns = torch.arange(first.capacity, device=key_mask.device)

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

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float,
                mask: torch.Tensor) -> torch.Tensor:
        """One query per row over the cached keys, behind ``mask`` (N, 1, 1, L); each query head reads its key /
        value head in place (torch >= 2.5) or from a repeated copy."""
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
        mask = self._step_mask(x.dtype)                                                   # (N, 1, 1, L)
        for w, cache_layer in zip(self.layers, self.cache.layers):
            projected = F.linear(self._norm(x, w.norm_in), *w.qkv).view(rows, heads + 2 * kv_heads, self.head_dim)
            rotated = self._rotate(projected[:, :heads + kv_heads], cos, signed_sin)      # (N, H + H_kv, D_h)
            q, k = rotated[:, :heads, None], rotated[:, heads:, None]                     # (N, H | H_kv, 1, D_h)
            v = projected[:, heads + kv_heads:, None]
            keys, values = cache_layer.write_at(self.position, k, v) if self.static \
                else cache_layer.update(k, v)                                             # (N, H_kv, L, D_h)
            out = self._attend(q, keys, values, w.scaling, mask[..., :keys.shape[2]])    # (N, H, 1, D_h)
            x = x + F.linear(out.reshape(rows, heads * self.head_dim), *w.o)
            gate, up = F.linear(self._norm(x, w.norm_post), *w.gate_up).chunk(2, dim=-1)  # (N, I) each
            x = x + F.linear(F.silu(gate) * up, *w.down)                                  # (N, D)
        if self.static:
            self.position += 1
        return self._norm(x, self.decoder.norm)                                          # (N, D)

    def _step_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """The key mask as an additive bias (N, 1, 1, L_max); with static shapes the columns not yet written
        (after this step's position, held on the device) are hidden as well."""
        if not self.static:
            return self.key_bias.to(dtype)
        unwritten = torch.zeros_like(self.columns, dtype=dtype).masked_fill(self.columns > self.position,
                                                                            float("-inf"))
        return self.key_bias.to(dtype) + unwritten                                       # (N, 1, 1, L_max)
