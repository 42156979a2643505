"""The Qwen2.5-Omni and Qwen3-Omni thinkers that transformers ships, as r1omni policies.

* :mod:`~r1omni.models.qwen_omni.processing`: torch-only pre-processing (frames -> patch rows,
  waveform -> log-mel, prompts with the right number of media placeholders).
* :mod:`~r1omni.models.qwen_omni.policy`: :class:`QwenOmniPolicy` and the ``policy.module`` that
  encodes each clip's media once for all its completions; :func:`load_policy`.
* :mod:`~r1omni.models.qwen_omni.presets`: named random-weight configurations (:data:`PRESETS`).
"""

from r1omni.models.qwen_omni.policy import QwenOmniPolicy, SharedMediaThinker, load_policy
from r1omni.models.qwen_omni.presets import PRESETS, ThinkerDims, build_preset, thinker_config
from r1omni.models.qwen_omni.processing import (
    FAMILY_TOKENS,
    OmniPreprocessing,
    OmniPreprocessor,
    chat_template,
    default_settings,
    patchify,
)

__all__ = ["QwenOmniPolicy", "SharedMediaThinker", "load_policy", "PRESETS", "ThinkerDims", "build_preset",
           "thinker_config", "FAMILY_TOKENS", "OmniPreprocessing", "OmniPreprocessor", "chat_template",
           "default_settings", "patchify"]
