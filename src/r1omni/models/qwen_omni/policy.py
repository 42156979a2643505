"""The Qwen2.5-Omni / Qwen3-Omni thinkers (transformers) behind r1omni's :class:`~r1omni.models.policy.Policy`.

Two pieces:

* :class:`SharedMediaThinker` is ``policy.module``: an ``nn.Module`` around the HF thinker whose
  forward takes B prompts, their media, N completions and the row -> clip map. It encodes each
  clip's video and audio **once** with the thinker's own ``get_video_features`` /
  ``get_audio_features``, scatters the features into the B prompt embeddings and computes the
  3-D (M-RoPE) positions of the B prompts with the thinker's ``get_rope_index``; the language model
  then runs the B prompts once and the N completions on top of their keys / values
  (:mod:`r1omni.models.prefix`; ``share_prompts=False``: the N full rows). Qwen3's DeepStack visual
  features are added on the prompt positions. The thinker's own forward cannot share anything across
  rows (it wants per-row media), which is why this wrapper exists; its log-probabilities and gradients
  equal the thinker's per-row forward (tested).
* :class:`MediaNorm` (off unless asked): a LayerNorm after the video projector and one after the
  audio projector, so that media tokens enter the language model at the text embeddings' scale.
* :class:`QwenOmniPolicy` prepares clips (``processing.py``), samples completions with r1omni's
  decoding loop (below), scores completions through ONE call of ``self.module`` (so a trainer may
  swap in a DDP / accelerate-wrapped module), names the freezable parts, and saves / loads.

Generation. HF ``generate(num_return_sequences=G)`` (transformers 5.23) encodes the video once but
copies the audio features G times through the audio tower and prefills all B*G prompt rows. Here
the B prompts are prefilled once (each medium encoded once, DeepStack applied), the KV cache is
repeated G times, and decoding continues with text positions ``last prompt position + 1 + step``,
which is what ``get_rope_index`` gives for text after the media. Every media placeholder and
boundary token (audio / image / video pads and the audio / vision bos / eos markers), and any id
the tokenizer cannot decode, is suppressed at every step; decoding stops at ``<|im_end|>``.
The loop is :func:`r1omni.models.decoding.generate`; this family supplies its ``prefill`` and
``stepper`` hooks (the Qwen2.5-Omni text model steps through :class:`~r1omni.models.decoding.Qwen2Step`,
Qwen3's MoE through its own forward). Greedy output equals HF ``generate`` (tested).

Not done here: audio interleaved into video (``use_audio_in_video``), images, the MoE router's
auxiliary loss (Qwen3's ``output_router_logits``), the talker (speech output). DDP: the audio
tower's ``audio_bos_eos_token`` embedding is never used by the thinker, and a batch without video
(or audio) leaves that tower unused, so wrap with ``find_unused_parameters=True`` or freeze them.

Letters in shape comments: B clips, G completions per clip, N = rows (B*G), P prompt length,
C completion length, V vocabulary, D hidden size, Tv video tokens, Ta audio tokens of a batch.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    Cache,
    DynamicCache,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen3OmniMoeThinkerForConditionalGeneration,
)

from r1omni.atomic import atomic_dir
from r1omni.models import decoding
from r1omni.models.card import CardInfo, write_model_card
from r1omni.models.decoding import Prefill, Step, Vocabulary, evaluating, qwen2_stepper
from r1omni.models.kv_cache import cache_parameter
from r1omni.models.logprobs import head_logprobs
from r1omni.models.policy import ClipInput, Completions, PreparedBatch, PromptStates, SamplingConfig
from r1omni.models.prefix import shared_prefix_hidden
from r1omni.models.qwen_omni.processing import (
    PREPROCESSING_FILE,
    OmniPreprocessing,
    OmniPreprocessor,
    default_settings,
    save_hf_processor_configs,
)

__all__ = ["QwenOmniPolicy", "SharedMediaThinker", "MediaNorm", "load_policy", "THINKER_CLASSES",
           "MEDIA_NORM_FILE"]

logger = logging.getLogger(__name__)

# config.json model_type -> (thinker class, r1omni family name)
THINKER_CLASSES: dict[str, tuple[type, str]] = {
    "qwen2_5_omni_thinker": (Qwen2_5OmniThinkerForConditionalGeneration, "qwen2_5_omni"),
    "qwen3_omni_moe_thinker": (Qwen3OmniMoeThinkerForConditionalGeneration, "qwen3_omni"),
}


MEDIA_NORM_FILE = "r1omni_media_norm.safetensors"
"""Where :meth:`QwenOmniPolicy.save` keeps a :class:`MediaNorm`'s weights (absent: no media norm)."""


class MediaNorm(nn.Module):
    """A LayerNorm after the video projector and one after the audio projector, their learnable gains
    initialised so that every media token enters the language model at the text embeddings' mean L2 norm.

    Why: a pre-norm LLM normalises only what each block *reads*; the residual stream a token carries is
    never rescaled, so a media token far above the text scale (the embedded demo measured video tokens at
    norm ~7 against text embeddings at ~0.56) barely moves under the blocks' updates and its information
    is lost to fusion ("representational inertia" of high-norm visual tokens: *The Unseen Bias*, arXiv
    2512.08374, whose fix is one carefully initialised LayerNorm after the projector; see
    ``shared/notes/levers-2026-12.md`` section 2). After a LayerNorm a token has norm sqrt(D) (zero mean,
    unit variance), so a gain of ``target_norm / sqrt(D)`` per channel puts it at ``target_norm``; the
    gains and biases then train with the projector they belong to (``parts()``).

    Not normalised: Qwen3's DeepStack features (added inside the LLM's first layers, not embedded).
    """

    def __init__(self, hidden_size: int, target_norm: float = 1.0) -> None:
        super().__init__()
        self.video = nn.LayerNorm(hidden_size)
        self.audio = nn.LayerNorm(hidden_size)
        with torch.no_grad():
            for norm in (self.video, self.audio):
                norm.weight.fill_(target_norm / math.sqrt(hidden_size))

    @classmethod
    def matching_text(cls, thinker: nn.Module, vocab_rows: int | None = None) -> "MediaNorm":
        """A media norm whose target is the mean L2 norm of the thinker's first ``vocab_rows`` embedding rows
        (the tokens the tokenizer can produce), on the thinker's device and dtype."""
        weight = thinker.model.get_input_embeddings().weight.detach()[:vocab_rows]  # (V, D)
        norm = cls(weight.shape[1], float(weight.float().norm(dim=1).mean()))
        return norm.to(device=weight.device, dtype=weight.dtype)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MediaNorm":
        state = safetensors.torch.load_file(str(path))
        norm = cls(state["video.weight"].shape[0])
        norm.load_state_dict(state)
        return norm


def _family_of(thinker: nn.Module) -> str:
    for cls, family in THINKER_CLASSES.values():
        if isinstance(thinker, cls):
            return family
    raise TypeError(f"expected a Qwen2.5-Omni or Qwen3-Omni thinker, got {type(thinker).__name__}")


@dataclass
class EmbeddedPrompts:
    """The B prompts as the language model sees them, media features already in place."""

    embeds: torch.Tensor                     # (B, P, D)
    position_ids: torch.Tensor               # (3, B, P) M-RoPE positions (long for Qwen2.5, float for Qwen3)
    video_mask: torch.Tensor | None          # (B, P) True at video placeholders (Qwen3 DeepStack only)
    deepstack: list[list[torch.Tensor]] | None  # per DeepStack level, per clip: (Tv_clip, D)

    def last_position(self) -> torch.Tensor:
        """Position of each prompt's last token (text: the three M-RoPE rows agree)."""
        return self.position_ids[0, :, -1]  # (B,)


class SharedMediaThinker(nn.Module):
    """``policy.module``: the thinker, with a forward that encodes each clip's media once for all its rows.

    ``forward(prompt_ids, prompt_mask, completion_ids, clip_index, media)`` returns the log-probability
    of every completion token (N, C), or with ``return_logits=True`` the logits that predict them
    (N, C, V). Row n continues prompt ``clip_index[n]``.

    With a ``media_norm`` (:class:`MediaNorm`) the video and audio features pass through it before they
    replace their placeholders; without one (default) they enter as the projectors give them.

    With ``share_prompts`` (default) each prompt also goes through the language model once: its
    keys / values (still attached to the graph) are indexed by ``clip_index`` and the N completions
    attend to them (:mod:`r1omni.models.prefix`, also under activation checkpointing), which cuts the
    text model's work by about G for the prompt part; without it every row runs as one prompt +
    completion sequence. Both give the same numbers (tested).
    """

    def __init__(self, thinker: nn.Module, share_prompts: bool = True, media_norm: MediaNorm | None = None) -> None:
        super().__init__()
        self.thinker = thinker
        self.family = _family_of(thinker)
        self.share_prompts = share_prompts
        self.media_norm = media_norm

    # -- pieces shared by scoring and generation ------------------------------------------------
    def embed_prompts(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                      media: dict[str, torch.Tensor]) -> EmbeddedPrompts:
        """Token embeddings of the B prompts with each clip's video / audio features scattered in."""
        model = self.thinker.model
        config = self.thinker.config
        embeds = model.get_input_embeddings()(prompt_ids)  # (B, P, D)
        video_mask = prompt_ids == config.video_token_id  # (B, P)
        audio_mask = prompt_ids == config.audio_token_id  # (B, P)
        deepstack = None
        if "pixel_values_videos" in media:
            video = model.get_video_features(media["pixel_values_videos"], media["video_grid_thw"], return_dict=True)
            video_embeds = torch.cat(video.pooler_output).to(embeds.dtype)  # (Tv, D)
            if self.media_norm is not None:
                video_embeds = self.media_norm.video(video_embeds)  # (Tv, D)
            _check_count("video", int(video_mask.sum()), video_embeds.shape[0])
            embeds = embeds.masked_scatter(video_mask[..., None], video_embeds)  # (B, P, D)
            if self.family == "qwen3_omni":
                per_clip_counts = video_mask.sum(dim=1).tolist()
                deepstack = [list(torch.cat(level).to(embeds.dtype).split(per_clip_counts))
                             for level in video.deepstack_features]
        elif bool(video_mask.any()):
            raise ValueError("prompt has video placeholders but the batch has no pixel_values_videos")
        audio_lengths = None
        if "input_features" in media:
            audio_embeds = self._audio_features(media["input_features"], media["feature_attention_mask"])
            audio_embeds = audio_embeds.to(embeds.dtype)  # (Ta, D)
            if self.media_norm is not None:
                audio_embeds = self.media_norm.audio(audio_embeds)  # (Ta, D)
            _check_count("audio", int(audio_mask.sum()), audio_embeds.shape[0])
            embeds = embeds.masked_scatter(audio_mask[..., None], audio_embeds)  # (B, P, D)
            audio_lengths = media["feature_attention_mask"].sum(dim=1)  # (A,)
        elif bool(audio_mask.any()):
            raise ValueError("prompt has audio placeholders but the batch has no input_features")
        position_ids, _ = model.get_rope_index(
            prompt_ids, None, media.get("video_grid_thw"), prompt_mask, False, audio_lengths,
            media.get("video_second_per_grid"))  # (3, B, P)
        return EmbeddedPrompts(embeds, position_ids, video_mask if deepstack is not None else None, deepstack)

    def _audio_features(self, features: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
        """Audio tower outputs (Ta, D) for A clips, in clip order."""
        model = self.thinker.model
        if self.family == "qwen2_5_omni":
            return model.get_audio_features(features, feature_mask, return_dict=True).last_hidden_state
        # Qwen3's tower pads every 100-frame chunk to the longest chunk of the batch and its stride-2
        # convolutions read that padding, so a clip's last tokens would depend on the other clips:
        # encode one clip at a time (what HF does for a single clip).
        outputs = []
        for clip_features, clip_mask in zip(features, feature_mask):
            frames = int(clip_mask.sum())
            outputs.append(model.get_audio_features(clip_features[None, :, :frames], clip_mask[None, :frames],
                                                    return_dict=True).last_hidden_state)  # (Ta_clip, D)
        return torch.cat(outputs)  # (Ta, D)

    def run_language_model(self, embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                           video_mask: torch.Tensor | None = None, deepstack: list[torch.Tensor] | None = None,
                           cache: Any = None) -> torch.Tensor:
        """Hidden states (rows, L, D) of the text model for ready-made embeddings and positions."""
        language_model = self.thinker.model.language_model
        kwargs: dict[str, Any] = dict(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                      use_cache=cache is not None)
        kwargs[cache_parameter(type(language_model).forward)] = cache
        if self.family == "qwen3_omni" and deepstack is not None:
            kwargs.update(visual_pos_masks=video_mask, deepstack_visual_embeds=deepstack)
        return language_model(**kwargs).last_hidden_state

    # -- scoring --------------------------------------------------------------------------------
    def forward(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                clip_index: torch.Tensor, media: dict[str, torch.Tensor],
                return_logits: bool = False) -> torch.Tensor:
        prompts = self.embed_prompts(prompt_ids, prompt_mask, media)
        if self.share_prompts:
            hidden = self._shared_prompt_hidden(prompts, prompt_mask, completion_ids, clip_index)  # (N, C, D)
        else:
            hidden = self._flat_hidden(prompts, prompt_mask, completion_ids, clip_index)  # (N, C, D)
        if return_logits:
            return self.thinker.lm_head(hidden)  # (N, C, V)
        return head_logprobs(hidden, self.thinker.lm_head, completion_ids)  # (N, C), never the (N, C, V) logits

    def _completion_inputs(self, prompts: EmbeddedPrompts, completion_ids: torch.Tensor,
                           clip_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Completion token embeddings (N, C, D) and their text positions (3, N, C)."""
        completion_len = completion_ids.shape[1]
        embeds = self.thinker.model.get_input_embeddings()(completion_ids)  # (N, C, D)
        steps = torch.arange(1, completion_len + 1, device=completion_ids.device)  # (C,)
        positions = prompts.last_position()[clip_index, None] + steps.to(prompts.position_ids.dtype)  # (N, C)
        return embeds, positions[None].expand(3, -1, -1)  # (3, N, C)

    def _shared_prompt_hidden(self, prompts: EmbeddedPrompts, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                              clip_index: torch.Tensor) -> torch.Tensor:
        """The B prompts once, the N completions on their (differentiable) keys / values
        (:func:`r1omni.models.prefix.shared_prefix_hidden`, with or without activation checkpointing)."""
        prompt_kwargs = {}
        if self.family == "qwen3_omni" and prompts.deepstack is not None:
            prompt_kwargs = dict(visual_pos_masks=prompts.video_mask,
                                 deepstack_visual_embeds=[torch.cat(level) for level in prompts.deepstack])
        embeds, positions = self._completion_inputs(prompts, completion_ids, clip_index)  # (N, C, D), (3, N, C)
        return shared_prefix_hidden(self.thinker.model.language_model, prompts.embeds, prompt_mask,
                                    prompts.position_ids, embeds, positions, clip_index, prompt_kwargs)  # (N, C, D)

    def _flat_hidden(self, prompts: EmbeddedPrompts, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                     clip_index: torch.Tensor) -> torch.Tensor:
        """Run every row as prompt + completion in one sequence (``share_prompts=False``: the per-row path the
        shared one is tested against)."""
        num_rows, completion_len = completion_ids.shape
        prompt_len = prompt_mask.shape[1]
        embeds, positions = self._completion_inputs(prompts, completion_ids, clip_index)  # (N, C, D), (3, N, C)
        embeds = torch.cat([prompts.embeds[clip_index], embeds], dim=1)  # (N, P+C, D)
        attention_mask = torch.cat([prompt_mask[clip_index], prompt_mask.new_ones(completion_ids.shape)], 1)  # (N, P+C)
        position_ids = torch.cat([prompts.position_ids[:, clip_index], positions], dim=2)  # (3, N, P+C)
        video_mask, deepstack = None, None
        if prompts.deepstack is not None:
            video_mask = torch.cat([prompts.video_mask[clip_index],
                                    prompts.video_mask.new_zeros(num_rows, completion_len)], dim=1)  # (N, P+C)
            rows = clip_index.tolist()
            deepstack = [torch.cat([level[c] for c in rows]) for level in prompts.deepstack]  # each (rows' Tv, D)
        hidden = self.run_language_model(embeds, attention_mask, position_ids, video_mask, deepstack)  # (N, P+C, D)
        return hidden[:, prompt_len - 1:prompt_len + completion_len - 1]  # (N, C, D)


def _check_count(what: str, placeholders: int, features: int) -> None:
    if placeholders != features:
        raise ValueError(f"{placeholders} {what} placeholder tokens but the {what} encoder gave {features} features; "
                         "prompts and media must come from the same prepare() call")


class QwenOmniPolicy:
    """A Qwen2.5-Omni or Qwen3-Omni thinker as an r1omni :class:`~r1omni.models.policy.Policy`; ``media_norm``
    (default None) normalises the media tokens (:class:`MediaNorm`) and is saved and loaded with the model;
    ``share_prompts`` (default True): see :attr:`share_prompts`."""

    def __init__(self, thinker: nn.Module, tokenizer: Any, settings: OmniPreprocessing | None = None,
                 media_norm: MediaNorm | None = None, share_prompts: bool = True) -> None:
        self.family = _family_of(thinker)
        self.thinker = thinker
        self.tokenizer = tokenizer
        self.settings = settings or default_settings(self.family)
        if self.settings.family != self.family:
            raise ValueError(f"settings are for {self.settings.family} but the thinker is {self.family}")
        self._check_config()
        self.preprocessor = OmniPreprocessor(tokenizer, self.settings)
        self._check_token_ids()
        self.module: nn.Module = SharedMediaThinker(thinker, share_prompts=share_prompts, media_norm=media_norm)
        # Generation always uses the unwrapped module (same parameters as a wrapped policy.module).
        self._shared = self.module
        self.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if self.eos_token_id is None or self.eos_token_id == tokenizer.unk_token_id:
            raise ValueError("the tokenizer has no <|im_end|> token (the end-of-turn token decoding stops at)")
        self.pad_token_id = tokenizer.pad_token_id
        self.suppressed_token_ids = self._suppressed_ids()
        self.vocabulary = Vocabulary(tokenizer, (self.eos_token_id,), self.pad_token_id, self.suppressed_token_ids)

    # -- validation -----------------------------------------------------------------------------
    def _check_config(self) -> None:
        vision = self.thinker.config.vision_config
        s = self.settings
        for name, expected in (("patch_size", vision.patch_size), ("temporal_patch_size", vision.temporal_patch_size),
                               ("merge_size", vision.spatial_merge_size),
                               ("num_mel_bins", self.thinker.config.audio_config.num_mel_bins)):
            if getattr(s, name) != expected:
                raise ValueError(f"pre-processing {name}={getattr(s, name)} but the thinker config has {expected}")
        if self.family == "qwen3_omni" and s.audio_n_window != self.thinker.config.audio_config.n_window:
            raise ValueError(f"pre-processing audio_n_window={s.audio_n_window} but the audio config has "
                             f"n_window={self.thinker.config.audio_config.n_window}")

    def _check_token_ids(self) -> None:
        config = self.thinker.config
        ids = self.preprocessor.token_ids
        pairs = [("video", config.video_token_id), ("audio", config.audio_token_id), ("image", config.image_token_id),
                 ("audio_bos", config.audio_start_token_id), ("vision_bos", config.vision_start_token_id)]
        for name, config_id in pairs:
            if ids[name] != config_id:
                raise ValueError(f"tokenizer {name} id {ids[name]} != thinker config id {config_id}")
        vocab = self.thinker.config.get_text_config().vocab_size
        if len(self.tokenizer) > vocab:
            raise ValueError(f"tokenizer has {len(self.tokenizer)} tokens but the model vocabulary is {vocab}")

    def _suppressed_ids(self) -> torch.Tensor:
        config = self.thinker.config
        ids = set(self.preprocessor.token_ids.values())
        ids |= {config.video_token_id, config.audio_token_id, config.image_token_id, config.audio_start_token_id,
                config.vision_start_token_id}
        for name in ("audio_end_token_id", "vision_end_token_id"):
            if getattr(config, name, None) is not None:
                ids.add(getattr(config, name))
        # Embedding rows beyond the tokenizer (padding rows of real checkpoints, or the real-size
        # presets' small tokenizer) cannot be decoded to text.
        ids |= set(range(len(self.tokenizer), config.get_text_config().vocab_size))
        return torch.tensor(sorted(ids), dtype=torch.long)

    # -- Policy ---------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return self.settings.num_frames

    @property
    def device(self) -> torch.device:
        return next(self.thinker.parameters()).device

    @property
    def media_norm(self) -> MediaNorm | None:
        return self._shared.media_norm

    @property
    def share_prompts(self) -> bool:
        """Score each clip's prompt once for all its rows (:mod:`r1omni.models.prefix`); False: every row runs
        as prompt + completion. The switch has this name in both families."""
        return self._shared.share_prompts

    @share_prompts.setter
    def share_prompts(self, value: bool) -> None:
        self._shared.share_prompts = value

    def to(self, device: torch.device | str) -> "QwenOmniPolicy":
        self._shared.to(device)
        return self

    def check_clip(self, clip: ClipInput) -> None:
        self.preprocessor.check(clip)

    def prepare(self, clips: list[ClipInput]) -> PreparedBatch:
        return self.preprocessor(clips)

    def generate(self, batch: PreparedBatch, num_return_sequences: int = 1,
                 sampling: SamplingConfig | None = None) -> Completions:
        return decoding.generate(self, self._shared, batch.to(self.device), num_return_sequences, sampling,
                                 self.vocabulary)

    def prefill(self, batch: PreparedBatch) -> Prefill:
        """The B prompts through the shared-media thinker once, media encoded once per clip and DeepStack
        applied (the :func:`~r1omni.models.decoding.generate` hook). New text continues at the prompt's last
        position + 1, which is what ``get_rope_index`` gives for text after the media."""
        shared = self._shared
        prompts = shared.embed_prompts(batch.input_ids, batch.attention_mask, batch.media)
        cache = DynamicCache(config=self.thinker.config.get_text_config())
        deepstack = None if prompts.deepstack is None else [torch.cat(level) for level in prompts.deepstack]
        hidden = shared.run_language_model(prompts.embeds, batch.attention_mask, prompts.position_ids,
                                           prompts.video_mask, deepstack, cache=cache)  # (B, P, D)
        return Prefill(self.thinker.lm_head(hidden[:, -1]), cache, batch.attention_mask,
                       prompts.last_position() + 1, batch.input_ids)

    def stepper(self, cache: Cache, key_mask: torch.Tensor, next_position: torch.Tensor, lean: bool = True) -> Step:
        """:class:`~r1omni.models.decoding.Qwen2Step` on Qwen2.5-Omni's text model; ``lean=False`` or Qwen3's
        MoE: the language model's own forward, one token per row on ``cache`` (M-RoPE rows equal for text)."""
        step = (qwen2_stepper(self.thinker.model.language_model, self.thinker.lm_head, cache, key_mask, next_position)
                if lean else None)
        if step is not None:
            return step
        shared, embed = self._shared, self.thinker.model.get_input_embeddings()
        prompt_len = cache.get_seq_length()

        def module_step(tokens: torch.Tensor, index: int) -> torch.Tensor:
            position = (next_position + index).view(1, -1, 1).expand(3, -1, -1)  # (3, N, 1)
            hidden = shared.run_language_model(embed(tokens)[:, None], key_mask[:, :prompt_len + index + 1],
                                               position, cache=cache)  # (N, 1, D)
            return self.thinker.lm_head(hidden[:, -1])  # (N, V)
        return module_step

    def media_tokens(self, batch: PreparedBatch) -> dict[str, list[torch.Tensor]]:
        """Each clip's video and audio tokens (n_i, D) as the language model receives them (towers,
        projectors and media norm applied), with gradients: tower pre-training
        (:mod:`r1omni.train.towers`) trains what produces them. Taken from the prompt embeddings that
        scoring uses, so that the towers are trained on exactly what the LLM reads."""
        batch = batch.to(self.device)
        embeds = self._shared.embed_prompts(batch.input_ids, batch.attention_mask, batch.media).embeds  # (B, P, D)
        config = self.thinker.config
        tokens = {}
        for name, token_id in (("video", config.video_token_id), ("audio", config.audio_token_id)):
            mask = batch.input_ids == token_id  # (B, P)
            tokens[name] = list(embeds[mask].split(mask.sum(dim=1).tolist()))  # B x (n_i, D)
        return tokens

    @torch.no_grad()
    def prompt_states(self, batch: PreparedBatch) -> PromptStates:
        """The B prompts' input embeddings by modality and the LLM's final hidden state at each prompt's
        last position (prompts are left-padded, so column -1), in eval mode: for the modality-balance
        diagnosis (:mod:`r1omni.explain.balance`)."""
        batch = batch.to(self.device)
        shared = self._shared
        with evaluating(shared):
            prompts = shared.embed_prompts(batch.input_ids, batch.attention_mask, batch.media)
            deepstack = None if prompts.deepstack is None else [torch.cat(level) for level in prompts.deepstack]
            hidden = shared.run_language_model(prompts.embeds, batch.attention_mask, prompts.position_ids,
                                               prompts.video_mask, deepstack)  # (B, P, D)
        config = self.thinker.config
        video = batch.input_ids == config.video_token_id  # (B, P)
        audio = batch.input_ids == config.audio_token_id  # (B, P)
        text = batch.attention_mask.bool() & ~video & ~audio  # (B, P)
        return PromptStates(prompts.embeds, video, audio, text, hidden[:, -1])

    def encode_completions(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return decoding.encode_completions(self.tokenizer, texts, self.eos_token_id, self.pad_token_id,
                                           forbidden_ids=self.suppressed_token_ids)

    def token_logprobs(self, batch: PreparedBatch, completion_ids: torch.Tensor,
                       clip_index: torch.Tensor) -> torch.Tensor:
        if completion_ids.ndim != 2 or clip_index.shape != completion_ids.shape[:1]:
            raise ValueError(f"completion_ids must be (N, C) and clip_index (N,), got {tuple(completion_ids.shape)} "
                             f"and {tuple(clip_index.shape)}")
        if clip_index.numel() and (int(clip_index.min()) < 0 or int(clip_index.max()) >= batch.num_clips):
            raise ValueError(f"clip_index must lie in [0, {batch.num_clips}), got {clip_index.tolist()}")
        device = self.device
        completion_ids = completion_ids.to(device)
        if bool(torch.isin(completion_ids, self.suppressed_token_ids.to(device)).any()):
            raise ValueError("completion_ids contain media placeholder / boundary tokens, which would misalign the "
                             "media features; use generate() or encode_completions()")
        batch = batch.to(device)
        return self.module(batch.input_ids, batch.attention_mask, completion_ids, clip_index.to(device),
                           batch.media)  # (N, C)

    def parts(self) -> dict[str, list[nn.Module]]:
        model = self.thinker.model
        vision_projector_names = ("merger", "merger_list")
        audio_projector_names = ("proj",) if self.family == "qwen2_5_omni" else ("proj1", "proj2")

        def children(module: nn.Module, names: tuple[str, ...], keep: bool) -> list[nn.Module]:
            return [child for name, child in module.named_children()
                    if (name in names) == keep and any(True for _ in child.parameters())]

        norm = self.media_norm
        return {
            "llm": [model.language_model, self.thinker.lm_head],
            "vision_tower": children(model.visual, vision_projector_names, keep=False),
            "vision_projector": children(model.visual, vision_projector_names, keep=True)
            + ([norm.video] if norm is not None else []),
            "audio_tower": children(model.audio_tower, audio_projector_names, keep=False),
            "audio_projector": children(model.audio_tower, audio_projector_names, keep=True)
            + ([norm.audio] if norm is not None else []),
        }

    def save(self, directory: str | os.PathLike, card: CardInfo | None = None) -> None:
        """The thinker, tokenizer, r1omni's pre-processing settings and the processor configs plain
        transformers reads (:func:`~r1omni.models.qwen_omni.processing.save_hf_processor_configs`), a media
        norm when there is one, and the model card (``card``: what the saver knows)."""
        with atomic_dir(directory) as tmp:
            self.thinker.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.settings.save(tmp)
            save_hf_processor_configs(self.settings, tmp)
            write_model_card(tmp, self.family, card)
            if self.media_norm is not None:
                state = {name: tensor.detach().contiguous() for name, tensor in self.media_norm.state_dict().items()}
                safetensors.torch.save_file(state, str(Path(tmp) / MEDIA_NORM_FILE))


def load_policy(directory: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                attn_implementation: str | None = None, settings: OmniPreprocessing | None = None,
                chat_template: str | None = None, **kwargs: Any) -> QwenOmniPolicy:
    """Load a folder written by :meth:`QwenOmniPolicy.save` (or a thinker folder with a tokenizer).

    ``settings`` overrides the saved pre-processing settings (folders without
    ``r1omni_preprocessing.json`` otherwise get the family defaults); ``chat_template`` replaces the
    tokenizer's template (a released tokenizer's text-only template cannot render media parts; use
    :func:`~r1omni.models.qwen_omni.processing.chat_template`).
    """
    if kwargs:
        raise TypeError(f"unexpected arguments {sorted(kwargs)}; qwen_omni.load_policy takes device, dtype, "
                        "attn_implementation, settings, chat_template")
    directory = Path(directory)
    config_path = directory / "config.json"
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type not in THINKER_CLASSES:
        raise ValueError(f"{config_path}: model_type {model_type!r} is not a Qwen-Omni thinker; "
                         f"expected one of {sorted(THINKER_CLASSES)}")
    cls, family = THINKER_CLASSES[model_type]
    load_kwargs: dict[str, Any] = {}
    if dtype is not None:
        load_kwargs["dtype"] = dtype
    if attn_implementation is not None:
        load_kwargs["attn_implementation"] = attn_implementation
    thinker = cls.from_pretrained(directory, **load_kwargs).to(device)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if settings is None:
        if (directory / PREPROCESSING_FILE).is_file():
            settings = OmniPreprocessing.load(directory)
        else:
            logger.info("%s has no %s; using the %s defaults", directory, PREPROCESSING_FILE, family)
            vision = thinker.config.vision_config
            settings = default_settings(family, patch_size=vision.patch_size,
                                        temporal_patch_size=vision.temporal_patch_size,
                                        merge_size=vision.spatial_merge_size)
    media_norm = None
    if (directory / MEDIA_NORM_FILE).is_file():
        weight = thinker.model.get_input_embeddings().weight
        media_norm = MediaNorm.load(directory / MEDIA_NORM_FILE).to(device=weight.device, dtype=weight.dtype)
    return QwenOmniPolicy(thinker, tokenizer, settings, media_norm=media_norm)
