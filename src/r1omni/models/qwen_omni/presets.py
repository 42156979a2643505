"""Named Qwen-Omni configurations with random weights: tiny ones for tests, a ~1M demo, the real sizes.

Every builder has the signature ``(seed=0, corpus=None, **overrides) -> QwenOmniPolicy``. The
tokenizer is a byte-level BPE trained offline on ``corpus`` (default
:func:`r1omni.models.tokenizer.default_corpus`) with the family's media tokens and a chat template
that renders video / audio parts; the thinker config takes its special-token ids from it.

``overrides`` may set any field of :class:`ThinkerDims` (sizes, vocabulary, frame size, ``media_norm``, ...) and
``device`` (default ``"cpu"``), ``dtype`` (default float32), ``attn_implementation``,
``system_prompt``. An unknown key is an error that lists the known ones.

The real-size presets (``qwen2.5-omni-3b`` / ``-7b``) copy the released thinker configurations
(text, vision and audio towers) so that GPU benchmarks see the real compute; their tokenizer is
still the small offline BPE (placeholders at small ids, the remaining embedding rows unused and
suppressed while sampling). To use released weights, load the checkpoint folder with
:func:`r1omni.models.load_policy` instead. :func:`thinker_config` builds a preset's config without
weights, e.g. to count parameters on the ``meta`` device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
)

from r1omni.models.qwen_omni.policy import MediaNorm, QwenOmniPolicy
from r1omni.models.qwen_omni.processing import FAMILY_TOKENS, chat_template, default_settings
from r1omni.models.tokenizer import build_bpe_tokenizer

__all__ = ["ThinkerDims", "PRESETS", "PRESET_DIMS", "thinker_config", "build_preset"]


@dataclass
class ThinkerDims:
    """The sizes of one preset; every field can be overridden by name in a preset builder."""

    family: str = "qwen2_5_omni"
    """``"qwen2_5_omni"`` (dense Qwen2 text model) or ``"qwen3_omni"`` (MoE text model, DeepStack vision)."""
    vocab_size: int = 512
    """Target size of the offline BPE vocabulary (the trainer stops early on a small corpus)."""
    model_vocab_size: int | None = None
    """Embedding rows; None = exactly the tokenizer's size (the real presets keep the released size)."""
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate_size: int = 128
    text_head_dim: int | None = None
    """None = hidden size / heads."""
    tie_word_embeddings: bool = True
    rope_theta: float = 1e6
    max_position_embeddings: int = 4096
    vision_hidden_size: int = 32
    vision_depth: int = 2
    vision_heads: int = 4
    vision_intermediate_size: int = 64
    vision_window_size: int = 56
    """Qwen2.5 window attention span in pixels (112 in the released model)."""
    vision_fullatt_blocks: tuple[int, ...] | None = None
    """Qwen2.5 blocks with full attention; None = the last block."""
    audio_d_model: int = 32
    audio_layers: int = 2
    audio_heads: int = 4
    audio_ffn_dim: int = 64
    frame_size: int = 56
    """Frames are resized to frame_size x frame_size (a multiple of 2 * patch size)."""
    num_frames: int = 4
    video_fps: float | None = None
    """None = the family default (2.0 for Qwen2.5, 1.0 for Qwen3)."""
    # Qwen3-Omni only
    num_experts: int = 4
    experts_per_token: int = 2
    moe_intermediate_size: int = 32
    deepstack_layers: tuple[int, ...] = (1,)
    """Vision blocks whose features are added to the first LLM layers (DeepStack)."""
    vision_position_embeddings: int = 64
    audio_n_window: int = 50
    audio_n_window_infer: int = 100
    audio_downsample_hidden_size: int = 16
    extra: dict[str, Any] = field(default_factory=dict)
    """Raw overrides merged into the thinker config's sub-configs: {"text": {...}, "vision": {...}, "audio": {...}}."""
    media_norm: bool = False
    """A LayerNorm after the video and the audio projector whose gain starts at the text embeddings' mean
    norm (:class:`~r1omni.models.qwen_omni.policy.MediaNorm`), so that media tokens enter the LLM at the
    text tokens' scale. Off by default (the presets' numbers stay as they were)."""

    def __post_init__(self) -> None:
        if self.family not in FAMILY_TOKENS:
            raise ValueError(f"family must be one of {sorted(FAMILY_TOKENS)}, got {self.family!r}")
        if self.text_hidden_size % self.text_heads or self.text_heads % self.text_kv_heads:
            raise ValueError(f"text_hidden_size ({self.text_hidden_size}) must divide by text_heads "
                             f"({self.text_heads}) and text_heads by text_kv_heads ({self.text_kv_heads})")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError(f"vision_hidden_size {self.vision_hidden_size} must divide by vision_heads "
                             f"{self.vision_heads}")
        if self.audio_d_model % self.audio_heads:
            raise ValueError(f"audio_d_model {self.audio_d_model} must divide by audio_heads {self.audio_heads}")
        head_dim = self.head_dim
        if head_dim % 8:
            raise ValueError(f"text head_dim {head_dim} must be a multiple of 8 (M-RoPE sections)")

    @property
    def head_dim(self) -> int:
        return self.text_head_dim or self.text_hidden_size // self.text_heads

    @property
    def patch_size(self) -> int:
        return 14 if self.family == "qwen2_5_omni" else 16


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies into (time, height, width) as the released 16/24/24 of 128 does."""
    half = head_dim // 2
    time = head_dim // 8
    height = (half - time) // 2
    return [time, height, half - time - height]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {**base, **extra}


def thinker_config(dims: ThinkerDims, token_ids: dict[str, int] | None = None,
                   vocab_size: int | None = None) -> Qwen2_5OmniThinkerConfig | Qwen3OmniMoeThinkerConfig:
    """The HF thinker config for ``dims``; ``token_ids`` (from the tokenizer) default to the released ids."""
    ids = {"audio": 151646, "image": 151655, "video": 151656, "audio_bos": 151647, "audio_eos": 151648,
           "vision_bos": 151652, "vision_eos": 151653, "im_start": 151644, "eos": 151645, "pad": 151643}
    if dims.family == "qwen3_omni":
        ids.update(audio_bos=151669, audio_eos=151670)
    ids.update(token_ids or {})
    vocab = vocab_size or dims.model_vocab_size or 152064
    extra = dims.extra
    text = dict(vocab_size=vocab, hidden_size=dims.text_hidden_size, intermediate_size=dims.text_intermediate_size,
                num_hidden_layers=dims.text_layers, num_attention_heads=dims.text_heads,
                num_key_value_heads=dims.text_kv_heads, max_position_embeddings=dims.max_position_embeddings,
                tie_word_embeddings=dims.tie_word_embeddings, eos_token_id=ids["eos"], pad_token_id=ids["pad"],
                rope_parameters={"rope_type": "default", "rope_theta": dims.rope_theta,
                                 "mrope_section": _mrope_section(dims.head_dim)})
    vision = dict(depth=dims.vision_depth, hidden_size=dims.vision_hidden_size,
                  intermediate_size=dims.vision_intermediate_size, num_heads=dims.vision_heads,
                  patch_size=dims.patch_size, spatial_merge_size=2, temporal_patch_size=2,
                  out_hidden_size=dims.text_hidden_size, in_channels=3)
    audio = dict(d_model=dims.audio_d_model, encoder_attention_heads=dims.audio_heads,
                 encoder_ffn_dim=dims.audio_ffn_dim, encoder_layers=dims.audio_layers, num_mel_bins=128,
                 max_source_positions=1500, output_dim=dims.text_hidden_size)
    if dims.family == "qwen2_5_omni":
        vision.update(window_size=dims.vision_window_size,
                      fullatt_block_indexes=list(dims.vision_fullatt_blocks or [dims.vision_depth - 1]))
        audio.update(n_window=100)
        if dims.text_head_dim is not None:
            text["head_dim"] = dims.text_head_dim
        return Qwen2_5OmniThinkerConfig(
            text_config=_merge(text, extra.get("text", {})), vision_config=_merge(vision, extra.get("vision", {})),
            audio_config=_merge(audio, extra.get("audio", {})),
            audio_token_index=ids["audio"], image_token_index=ids["image"], video_token_index=ids["video"],
            audio_start_token_id=ids["audio_bos"], audio_end_token_id=ids["audio_eos"],
            vision_start_token_id=ids["vision_bos"], vision_end_token_id=ids["vision_eos"],
            user_token_id=ids["im_start"], tie_word_embeddings=dims.tie_word_embeddings)
    text.update(head_dim=dims.head_dim, num_experts=dims.num_experts, num_experts_per_tok=dims.experts_per_token,
                moe_intermediate_size=dims.moe_intermediate_size)
    text["rope_parameters"]["interleaved"] = True
    vision.update(deepstack_visual_indexes=list(dims.deepstack_layers),
                  num_position_embeddings=dims.vision_position_embeddings)
    audio.update(n_window=dims.audio_n_window, n_window_infer=dims.audio_n_window_infer,
                 downsample_hidden_size=dims.audio_downsample_hidden_size)
    return Qwen3OmniMoeThinkerConfig(
        text_config=_merge(text, extra.get("text", {})), vision_config=_merge(vision, extra.get("vision", {})),
        audio_config=_merge(audio, extra.get("audio", {})),
        audio_token_id=ids["audio"], image_token_id=ids["image"], video_token_id=ids["video"],
        audio_start_token_id=ids["audio_bos"], audio_end_token_id=ids["audio_eos"],
        vision_start_token_id=ids["vision_bos"], vision_end_token_id=ids["vision_eos"],
        user_token_id=ids["im_start"], tie_word_embeddings=dims.tie_word_embeddings)


PRESET_DIMS: dict[str, ThinkerDims] = {
    # ~0.3M parameters: the shape of transformers' own tiny Qwen2.5-Omni test configs.
    "qwen2.5-omni-tiny": ThinkerDims(),
    "qwen3-omni-tiny": ThinkerDims(family="qwen3_omni", text_head_dim=16, frame_size=64),
    # ~1M parameters: the embedded benchmark's default (faces at 56x56, 4 frames, ~1 s audio).
    "qwen2.5-omni-demo": ThinkerDims(
        vocab_size=1200, text_hidden_size=128, text_layers=4, text_heads=4, text_kv_heads=2,
        text_intermediate_size=256, vision_hidden_size=64, vision_depth=2, vision_heads=4,
        vision_intermediate_size=128, vision_window_size=112, audio_d_model=64, audio_layers=2, audio_heads=4,
        audio_ffn_dim=128),
    # The released thinkers (Qwen2.5-Omni-3B / -7B config.json, thinker_config).
    "qwen2.5-omni-3b": ThinkerDims(
        vocab_size=1024, model_vocab_size=151936, text_hidden_size=2048, text_layers=36, text_heads=16,
        text_kv_heads=2, text_intermediate_size=11008, tie_word_embeddings=True, max_position_embeddings=32768,
        vision_hidden_size=1280, vision_depth=32, vision_heads=16, vision_intermediate_size=3420,
        vision_window_size=112, vision_fullatt_blocks=(7, 15, 23, 31), audio_d_model=1280, audio_layers=32,
        audio_heads=20, audio_ffn_dim=5120, frame_size=336, num_frames=8),
    "qwen2.5-omni-7b": ThinkerDims(
        vocab_size=1024, model_vocab_size=152064, text_hidden_size=3584, text_layers=28, text_heads=28,
        text_kv_heads=4, text_intermediate_size=18944, tie_word_embeddings=False, max_position_embeddings=32768,
        vision_hidden_size=1280, vision_depth=32, vision_heads=16, vision_intermediate_size=3420,
        vision_window_size=112, vision_fullatt_blocks=(7, 15, 23, 31), audio_d_model=1280, audio_layers=32,
        audio_heads=20, audio_ffn_dim=5120, frame_size=336, num_frames=8),
}

_BUILD_OPTIONS = ("device", "dtype", "attn_implementation", "system_prompt")


def build_preset(name: str, seed: int = 0, corpus: list[str] | None = None, **overrides: Any) -> QwenOmniPolicy:
    """Build preset ``name`` with random weights (seeded; the global RNG state is left untouched)."""
    if name not in PRESET_DIMS:
        raise KeyError(f"unknown qwen_omni preset {name!r}; known: {sorted(PRESET_DIMS)}")
    options = {key: overrides.pop(key) for key in _BUILD_OPTIONS if key in overrides}
    known = {f.name for f in dataclasses.fields(ThinkerDims)} - {"family"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown override(s) {unknown} for preset {name!r}; "
                        f"known: {sorted(known | set(_BUILD_OPTIONS))}")
    dims = dataclasses.replace(PRESET_DIMS[name], **overrides)
    tokens = FAMILY_TOKENS[dims.family]
    default_system = "You are a helpful assistant." if dims.family == "qwen2_5_omni" else None
    tokenizer = build_bpe_tokenizer(corpus, vocab_size=dims.vocab_size,
                                    extra_special_tokens=tokens.extra_special_tokens(),
                                    chat_template=chat_template(tokens, options.get("system_prompt", default_system)))
    token_ids = {"audio": tokenizer.audio_token_id, "image": tokenizer.image_token_id,
                 "video": tokenizer.video_token_id, "audio_bos": tokenizer.audio_bos_token_id,
                 "audio_eos": tokenizer.audio_eos_token_id, "vision_bos": tokenizer.vision_bos_token_id,
                 "vision_eos": tokenizer.vision_eos_token_id,
                 "im_start": tokenizer.convert_tokens_to_ids("<|im_start|>"),
                 "eos": tokenizer.convert_tokens_to_ids("<|im_end|>"), "pad": tokenizer.pad_token_id}
    config = thinker_config(dims, token_ids, vocab_size=dims.model_vocab_size or len(tokenizer))
    if options.get("attn_implementation"):
        config._attn_implementation = options["attn_implementation"]
    device = torch.device(options.get("device", "cpu"))
    cls = (Qwen2_5OmniThinkerForConditionalGeneration if dims.family == "qwen2_5_omni"
           else Qwen3OmniMoeThinkerForConditionalGeneration)
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        with device:
            thinker = cls(config)
    dtype = options.get("dtype")
    if dtype is not None:
        thinker.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    settings = default_settings(dims.family, frame_height=dims.frame_size, frame_width=dims.frame_size,
                                num_frames=dims.num_frames, patch_size=dims.patch_size,
                                audio_n_window=dims.audio_n_window if dims.family == "qwen3_omni" else 50,
                                **({"video_fps": dims.video_fps} if dims.video_fps else {}))
    media_norm = MediaNorm.matching_text(thinker, vocab_rows=len(tokenizer)) if dims.media_norm else None
    return QwenOmniPolicy(thinker, tokenizer, settings, media_norm=media_norm)


def _builder(name: str, description: str) -> Callable[..., QwenOmniPolicy]:
    def build(seed: int = 0, corpus: list[str] | None = None, **overrides: Any) -> QwenOmniPolicy:
        return build_preset(name, seed=seed, corpus=corpus, **overrides)

    build.__name__ = build.__qualname__ = "build_" + name.replace(".", "_").replace("-", "_")
    build.__doc__ = f"{description}\n\nSee :mod:`r1omni.models.qwen_omni.presets` for the overridable fields."
    return build


PRESETS: dict[str, Callable[..., QwenOmniPolicy]] = {
    "qwen2.5-omni-tiny": _builder("qwen2.5-omni-tiny", "Qwen2.5-Omni thinker, ~0.3M random parameters, 4 frames of "
                                  "56x56 + ~1 s audio (tests)."),
    "qwen3-omni-tiny": _builder("qwen3-omni-tiny", "Qwen3-Omni MoE thinker, ~0.3M random parameters, 4 frames of "
                                "64x64 + ~1 s audio (tests)."),
    "qwen2.5-omni-demo": _builder("qwen2.5-omni-demo", "Qwen2.5-Omni thinker, ~1M random parameters (text 128x4), "
                                  "the embedded benchmark's default model."),
    "qwen2.5-omni-3b": _builder("qwen2.5-omni-3b", "Qwen2.5-Omni-3B thinker shape, random weights (GPU benchmarks)."),
    "qwen2.5-omni-7b": _builder("qwen2.5-omni-7b", "Qwen2.5-Omni-7B thinker shape, random weights (GPU benchmarks)."),
}
