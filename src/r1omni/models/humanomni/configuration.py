"""HumanOmni / R1-Omni configuration: the released ``config.json`` plus the three tower configs.

The released checkpoints (``model_type: "HumanOmni_qwen2"``) store one flat ``config.json``: the
Qwen2 keys of the language model and the ``mm_*`` keys of the multimodal parts. The architecture
of the SigLIP vision tower, the Whisper audio tower and the BERT gate encoder is NOT in it: the
official code reads it from the folders that ``mm_vision_tower`` / ``mm_audio_tower`` and a
hard-coded BERT path name. :class:`HumanOmniConfig` is a :class:`~transformers.Qwen2Config` with
the ``mm_*`` keys as typed fields and the three tower configs attached as ``vision_config``,
``audio_config`` and ``bert_config``; :meth:`HumanOmniConfig.to_released_dict` writes the flat
released layout back (tower configs go to sub-folders, see ``policy.save``).

What this module refuses: projector types other than the 0.5B ones (``all_in_one_small`` +
``mlp2x_gelu``; HumanOmni-7B's ``all_in_one`` with its compressor is not implemented) and vision
features other than ``patch``. Unknown keys of a downloaded ``config.json`` are kept and written
back unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, BertConfig, PreTrainedConfig, Qwen2Config, SiglipVisionConfig, WhisperConfig

__all__ = ["HumanOmniConfig", "GATE_HIDDEN_SIZE", "NUM_GATE_BRANCHES", "MODEL_TYPE"]

MODEL_TYPE = "HumanOmni_qwen2"
# The gate MLP width is hard-coded to 3584 (the 7B LLM width) in the official code, for every size.
GATE_HIDDEN_SIZE = 3584
# Gate branches, in the order the softmax weights multiply them: video (global), body, face.
NUM_GATE_BRANCHES = 3

SUPPORTED_PROJECTORS = ("all_in_one_small",)
SUPPORTED_AUDIO_PROJECTORS = ("mlp2x_gelu",)

# Fields of transformers' config objects that the released config.json does not carry.
_NOT_RELEASED = frozenset({
    "_name_or_path", "chunk_size_feed_forward", "id2label", "label2id", "is_encoder_decoder",
    "output_attentions", "output_hidden_states", "problem_type", "return_dict", "layer_types",
    "rope_parameters", "dtype", "vision_config", "audio_config", "bert_config",
    "_attn_implementation_autoset", "tie_encoder_decoder",
})


def _as_config(value: Any, cls: type[PreTrainedConfig], name: str) -> PreTrainedConfig | None:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls(**value)
    raise TypeError(f"{name} must be a {cls.__name__}, a dict or None, got {type(value).__name__}")


@strict(accept_kwargs=True)
@dataclass(repr=False)
class HumanOmniConfig(Qwen2Config):
    """Qwen2 LLM config + the ``mm_*`` keys of HumanOmni + the tower configs (not serialised in config.json)."""

    model_type = MODEL_TYPE

    mm_vision_tower: str | None = None
    """Folder of the SigLIP vision tower (config, preprocessor config, maybe weights); relative
    paths are resolved against the checkpoint folder."""
    mm_audio_tower: str | None = None
    """Folder of the Whisper audio tower, resolved like ``mm_vision_tower``."""
    mm_hidden_size: int = 768
    """Width of the vision-tower features (SigLIP hidden size)."""
    audio_hidden_size: int = 1280
    """Width of the audio-tower features (Whisper d_model)."""
    mm_projector_type: str = "all_in_one_small"
    """Vision projector; only the 0.5B ``all_in_one_small`` is implemented."""
    mm_audio_projector_type: str = "mlp2x_gelu"
    """Audio projector: Linear -> GELU -> Linear."""
    mm_vision_select_layer: int = -2
    """Which SigLIP ``hidden_states`` entry is used (-2: output of the second-to-last layer)."""
    mm_vision_select_feature: str = "patch"
    """All patch tokens (SigLIP has no CLS token)."""
    num_frames: int = 8
    """Frames sampled per clip."""
    mm_use_x_start_end: bool = True
    """Wrap the placeholders as ``<vi_start><video><vi_end>`` / ``<au_start><audio><au_end>`` (plain text)."""
    image_aspect_ratio: str = "pad"
    """Training-time frame pre-processing (pad to square); the official inference ignores it and stretches."""
    vision_config: SiglipVisionConfig | dict | None = None
    """SigLIP vision-tower architecture (from the tower folder; not written to config.json)."""
    audio_config: WhisperConfig | dict | None = None
    """Whisper architecture (from the tower folder; only the encoder is built)."""
    bert_config: BertConfig | dict | None = None
    """BERT gate-encoder architecture (from ``bert/config.json``)."""

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.vision_config = _as_config(self.vision_config, SiglipVisionConfig, "vision_config")
        self.audio_config = _as_config(self.audio_config, WhisperConfig, "audio_config")
        self.bert_config = _as_config(self.bert_config, BertConfig, "bert_config")
        if self.mm_projector_type not in SUPPORTED_PROJECTORS:
            raise ValueError(f"mm_projector_type {self.mm_projector_type!r} is not implemented; r1omni supports "
                             f"{SUPPORTED_PROJECTORS} (the 0.5B HumanOmni / R1-Omni checkpoints)")
        if self.mm_audio_projector_type not in SUPPORTED_AUDIO_PROJECTORS:
            raise ValueError(f"mm_audio_projector_type {self.mm_audio_projector_type!r} is not implemented; "
                             f"supported: {SUPPORTED_AUDIO_PROJECTORS}")
        if self.mm_vision_select_feature != "patch":
            raise ValueError(f"mm_vision_select_feature {self.mm_vision_select_feature!r} is not supported; "
                             "SigLIP has no CLS token, use 'patch'")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.vision_config is not None and self.vision_config.hidden_size != self.mm_hidden_size:
            raise ValueError(f"the vision tower has hidden_size {self.vision_config.hidden_size} but mm_hidden_size "
                             f"is {self.mm_hidden_size}: is mm_vision_tower the SigLIP the checkpoint was trained "
                             "with?")
        if self.audio_config is not None and self.audio_config.d_model != self.audio_hidden_size:
            # The official code silently overwrites audio_hidden_size from the tower; a mismatch means a
            # wrong Whisper folder (R1-Omni issue #18), which then fails on the projector shapes.
            raise ValueError(f"the audio tower has d_model {self.audio_config.d_model} but the checkpoint expects "
                             f"audio_hidden_size {self.audio_hidden_size}: point mm_audio_tower at the Whisper the "
                             "checkpoint was trained with (whisper-large-v3 for the released 0.5B models)")

    @property
    def has_towers(self) -> bool:
        """True when the three tower configs are attached (a model can be built)."""
        return None not in (self.vision_config, self.audio_config, self.bert_config)

    def to_released_dict(self, torch_dtype: torch.dtype | None = None) -> dict[str, Any]:
        """The flat ``config.json`` of the released checkpoints (no tower configs, Qwen2 keys as 4.49 wrote them)."""
        data = {k: v for k, v in self.to_dict().items() if k not in _NOT_RELEASED}
        if data.get("pad_token_id") is None:
            data.pop("pad_token_id", None)
        rope = dict(self.rope_parameters or {})
        data["rope_theta"] = rope.pop("rope_theta", 1_000_000.0)
        rope_type = rope.pop("rope_type", "default")
        data["rope_scaling"] = None if rope_type == "default" and not rope else {"rope_type": rope_type, **rope}
        dtype = torch_dtype if torch_dtype is not None else self.dtype
        data["torch_dtype"] = str(dtype).removeprefix("torch.") if dtype is not None else None
        data["model_type"] = MODEL_TYPE
        data["architectures"] = ["HumanOmniQwen2ForCausalLM"]
        return copy.deepcopy(data)


# AutoConfig reads HumanOmni folders (r1omni.hf_auto imports this module when transformers' Auto classes load).
AutoConfig.register(MODEL_TYPE, HumanOmniConfig, exist_ok=True)
