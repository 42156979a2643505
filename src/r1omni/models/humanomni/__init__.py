"""HumanOmni / R1-Omni, checkpoint-compatible: SigLIP + Whisper encoder + BERT-gated projector + Qwen2.

* :mod:`.configuration`: :class:`HumanOmniConfig` (released ``config.json`` + tower configs);
* :mod:`.modeling`: :class:`HumanOmniForCausalLM` (module tree and key names of the released
  ``model.safetensors``; multimodal merge; released-layout loading);
* :mod:`.processing`: :class:`HumanOmniProcessor` (frames, Whisper features, prompts with sentinels, gate text);
* :mod:`.policy`: :class:`HumanOmniPolicy` and :func:`load_policy` (the :class:`~r1omni.models.policy.Policy`);
* :mod:`.presets`: ``PRESETS`` (``humanomni-tiny``, ``r1-omni-0.5b``) with random weights.
"""

from r1omni.models.humanomni.configuration import HumanOmniConfig
from r1omni.models.humanomni.modeling import HumanOmniForCausalLM
from r1omni.models.humanomni.policy import HumanOmniPolicy, load_policy
from r1omni.models.humanomni.presets import PRESETS
from r1omni.models.humanomni.processing import HumanOmniProcessor

__all__ = ["HumanOmniConfig", "HumanOmniForCausalLM", "HumanOmniProcessor", "HumanOmniPolicy", "load_policy",
           "PRESETS"]
