"""The policy interface: what training, evaluation, explanation and serving need from a model.

Every model family (HumanOmni / R1-Omni, the Qwen-Omni thinkers) implements :class:`Policy`, so
code above ``r1omni.models`` never cares which model it drives. The contract:

* :meth:`Policy.prepare` turns clips (decoded media + question text) into a :class:`PreparedBatch`:
  the prompt tokenised with the model's own chat template and the media as model tensors, built
  **once per clip**.
* :meth:`Policy.generate` samples ``num_return_sequences`` completions per clip; rows of clip ``b``
  are contiguous (``clip_index`` says which clip each row belongs to). Media is encoded once per
  clip, not once per completion.
* :meth:`Policy.token_logprobs` scores given completion tokens (rollouts in GRPO, targets in SFT)
  with ONE call of ``policy.module(...)``, so that a trainer may replace ``policy.module`` with its
  accelerate / DDP / DeepSpeed-wrapped version and still get gradient synchronisation. Media is
  encoded once per clip inside that call and shared by the clip's rows.
* :meth:`Policy.check_clip` says, per clip and before any batching, whether ``prepare`` can read a
  clip (a Qwen-Omni clip needs audio long enough for one audio token): it raises
  :class:`ClipRejected`, which the decode loop records against the clip's file like an unreadable
  file, so one bad clip never takes its batch-mates down with it.
* :meth:`Policy.save` writes a folder that :func:`r1omni.models.load_policy` reads back.

Devices. ``prepare`` and ``encode_completions`` return CPU tensors; ``generate`` and ``token_logprobs``
move what they are given to the model's device and return tensors there.

Train / eval mode. ``generate`` owns its mode: it decodes in eval mode (no dropout) without gradients
and leaves every submodule in the mode it found (:func:`r1omni.models.decoding.generate`), so no
caller sets a mode around it. ``token_logprobs`` runs in the mode the caller left ``module`` in: a
trainer's loss in train mode, scoring for evaluation or explanation in eval mode, set by that caller.

A modality is absent from a clip when its field in :class:`ClipInput` is None: the policy then
leaves that modality's placeholder out of the prompt (how the official code runs video-only).

Letters in shape comments: B clips, G completions per clip, N = rows (B*G), P prompt length,
C completion length, V vocabulary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from r1omni.models.card import CardInfo

__all__ = ["ClipInput", "ClipRejected", "SamplingConfig", "PreparedBatch", "Completions", "PromptStates", "Policy",
           "MODEL_PARTS", "recorded_sampling"]

# Names of the parts a training config can freeze or train (not every family has every part).
MODEL_PARTS = ("llm", "vision_tower", "audio_tower", "vision_projector", "audio_projector", "gate_text_encoder",
               "gate")

# Sampling fields that are gone, with why; a YAML file or override that sets one gets this message.
_RETIRED_SAMPLING = {
    "decoder": "removed: there is one decoding loop (r1omni.models.decoding; the former 'fast'); delete the key "
               "(benchmarks/grpo_step.py measures the earlier loop against it)",
}


def recorded_sampling(values: dict[str, Any]) -> dict[str, Any]:
    """Sampling settings an earlier run recorded (``asdict``) in today's fields: ``decoder: "fast"`` is the
    loop every run uses now, so it is dropped and such a record matches today's settings; any other
    retired value is kept, so the record still differs from today's (checkpoints, evaluation folders).
    A field added since (:data:`_LATER_SAMPLING`) that the record lacks reads as its default, which is what
    that run did."""
    values = {**_LATER_SAMPLING, **values}
    return {key: value for key, value in values.items() if not (key == "decoder" and value == "fast")}


# SamplingConfig fields added after runs were recorded, with the value every earlier run decoded with.
_LATER_SAMPLING: dict[str, Any] = {"sync_every": 1, "static_shapes": False}


class ClipRejected(ValueError):
    """A clip this model cannot read, whatever else is in its batch (audio too short for one audio
    token, a media token typed into the question). A per-clip failure: the message says why, and the
    caller names the file (:meth:`r1omni.clips.ClipLoader.load_many` turns it into a ``MediaError``)."""


@dataclass
class ClipInput:
    """One clip as a policy receives it: decoded media plus the user's question.

    ``frames`` are the sampled RGB frames (T, H, W, 3) uint8 (``r1omni.media.sample_frames``);
    ``waveform`` is 16 kHz mono float32. None means the modality is absent.
    """

    question: str
    frames: np.ndarray | None = None
    waveform: np.ndarray | None = None
    sample_rate_hz: int = 16000

    def __post_init__(self) -> None:
        if self.frames is not None:
            if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (T, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
        if self.waveform is not None and self.waveform.ndim != 1:
            raise ValueError(f"waveform must be mono (S,), got shape {self.waveform.shape}")
        if self.sample_rate_hz != 16000 and self.waveform is not None:
            raise ValueError(f"waveform must be 16 kHz (got {self.sample_rate_hz} Hz); resample when decoding")


@dataclass
class SamplingConfig:
    """Decoding settings. Greedy by default (evaluation); GRPO rollouts set ``do_sample=True``."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50          # 0 disables top-k
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    logprobs: bool = False
    """Record each new token's log-probability (``Completions.logprobs``). Off unless asked: GRPO scores
    its rollouts again with gradients, and the record costs a full-vocabulary logsumexp per step."""
    sync_every: int = 1
    """Ask "has every row ended?" every this many steps. The question copies a flag from the device to the
    host, which on a GPU stalls the queue of work (and stops a captured step) at every token; rows that ended
    meanwhile emit padding, and the columns after the last row ended are trimmed, so the answer is the same
    whatever the value. 1 on every machine until a GPU measures a better one."""
    static_shapes: bool = False
    """Decode with tensors whose shapes do not change from step to step (the Qwen2 step: each new key / value
    written in place at a position held on the device, attention over the whole pre-sized cache behind a
    mask), so that a step can be captured as a CUDA graph; the same numbers within float rounding. Other
    decoders step through their forward, as without it."""

    RETIRED_KEYS = _RETIRED_SAMPLING   # read by r1omni.yamlconfig: a retired key is refused with its reason

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError("sampling needs temperature > 0; for greedy decoding set do_sample=False")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")


@dataclass
class PreparedBatch:
    """Tokenised prompts (left-padded) and the media tensors of B clips, ready for the model."""

    input_ids: torch.Tensor          # (B, P)
    attention_mask: torch.Tensor     # (B, P)
    media: dict[str, Any] = field(default_factory=dict)   # family-specific model inputs for the B clips
    prompts: list[str] = field(default_factory=list)      # the rendered prompt text per clip (for logs)

    @property
    def num_clips(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> "PreparedBatch":
        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return value.to(device)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(move(v) for v in value)
            return value

        return PreparedBatch(self.input_ids.to(device), self.attention_mask.to(device), move(self.media),
                             list(self.prompts))


@dataclass
class Completions:
    """Generated completions, G per clip, rows of one clip contiguous."""

    ids: torch.Tensor         # (N, C) right-padded; includes the end-of-turn token when produced
    mask: torch.Tensor        # (N, C) 1 up to and including the first end-of-turn token
    texts: list[str]          # (N,) decoded without special tokens
    clip_index: torch.Tensor  # (N,) which clip of the batch each row belongs to
    logprobs: torch.Tensor | None = None  # (N, C) log-probability of each token under the untempered model
    #                                       (when ``SamplingConfig.logprobs`` asked for it)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=1)  # (N,)


@dataclass
class PromptStates:
    """What the language model receives and makes of B prompts, for diagnoses (``r1omni.explain.balance``).

    Not part of :class:`Policy`: a family offers it as ``policy.prompt_states(batch)`` where it can (the
    Qwen-Omni thinkers); D is the language model's hidden size.
    """

    embeds: torch.Tensor        # (B, P, D) input embeddings, media features in place of their placeholders
    video_mask: torch.Tensor    # (B, P) True at video tokens
    audio_mask: torch.Tensor    # (B, P) True at audio tokens
    text_mask: torch.Tensor     # (B, P) True at every other prompt token (padding excluded)
    last_hidden: torch.Tensor   # (B, D) the LLM's final hidden state at the last prompt position, which
    #                             predicts the first completion token


@runtime_checkable
class Policy(Protocol):
    """What every model family implements. See the module docstring for the contract."""

    family: str                 # "humanomni", "qwen2_5_omni", "qwen3_omni"
    module: torch.nn.Module     # the trainable module; a trainer may replace it with a wrapped one
    tokenizer: Any

    @property
    def num_frames(self) -> int:
        """How many frames per clip the model reads (``r1omni.media.sample_frames`` count)."""
        ...

    def check_clip(self, clip: ClipInput) -> None:
        """Raise :class:`ClipRejected` when ``prepare`` would refuse this clip; cheap (no features)."""
        ...

    def prepare(self, clips: list[ClipInput]) -> PreparedBatch:
        """The clips as model inputs, on the CPU."""
        ...

    def generate(self, batch: PreparedBatch, num_return_sequences: int = 1,
                 sampling: SamplingConfig | None = None) -> Completions:
        """Completions on the model's device, decoded in eval mode; every submodule's mode is left as found."""
        ...

    def encode_completions(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Target texts -> CPU (ids (N, C), mask (N, C)), the end-of-turn token appended (SFT targets)."""
        ...

    def token_logprobs(self, batch: PreparedBatch, completion_ids: torch.Tensor,
                       clip_index: torch.Tensor) -> torch.Tensor:
        """Log-probability of each completion token, (N, C), through one ``self.module`` call, on the model's
        device, in the mode the caller left ``module`` in."""
        ...

    def parts(self) -> dict[str, list[torch.nn.Module]]:
        """Modules by part name (keys from ``MODEL_PARTS``) for freezing / training choices."""
        ...

    def save(self, directory: str | os.PathLike, card: CardInfo | None = None) -> None:
        """Write a folder :func:`r1omni.models.load_policy` reads, with its model card (``README.md``;
        ``card``: what the saver knows, :class:`r1omni.models.card.CardInfo`)."""
        ...
