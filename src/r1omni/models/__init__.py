"""Model families behind one policy interface (see :mod:`r1omni.models.policy`).

* ``humanomni``: HumanOmni / R1-Omni checkpoint-compatible (SigLIP + Whisper + BERT gate + Qwen2).
* ``qwen_omni``: the Qwen2.5-Omni and Qwen3-Omni thinkers that transformers ships.

:func:`load_policy` reads any saved model folder (the family comes from its ``config.json``), after
:func:`check_weights` has made sure its weights files are there and whole; :func:`init_preset` builds
a named configuration with random weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from r1omni.models.policy import ClipInput, ClipRejected, Completions, Policy, PreparedBatch, SamplingConfig

__all__ = ["ClipInput", "ClipRejected", "Completions", "Policy", "PreparedBatch", "SamplingConfig", "load_policy",
           "init_preset", "list_presets", "family_of", "check_weights"]

# What holds the weights of a saved folder (transformers reads any of them; HumanOmni safetensors only).
_WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                  "pytorch_model.bin.index.json")

# config.json "model_type" -> family module (imported lazily: each pulls a different part of transformers)
_FAMILY_BY_MODEL_TYPE = {
    "HumanOmni_qwen2": "humanomni",
    "humanomni_qwen2": "humanomni",
    "qwen2_5_omni_thinker": "qwen_omni",
    "qwen3_omni_moe_thinker": "qwen_omni",
}


def family_of(directory: str | os.PathLike) -> str:
    """The family module name for a saved model folder, from its ``config.json``."""
    config_path = Path(directory) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no config.json; is {directory} a saved model folder?")
    try:
        model_type = json.loads(config_path.read_text())["model_type"]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{config_path}: cannot read 'model_type' ({err})") from None
    try:
        return _FAMILY_BY_MODEL_TYPE[model_type]
    except KeyError:
        raise ValueError(f"{config_path}: model_type {model_type!r} is not supported; "
                         f"supported: {sorted(set(_FAMILY_BY_MODEL_TYPE))}") from None


def _family_module(family: str):
    if family == "humanomni":
        from r1omni.models import humanomni as module
    elif family == "qwen_omni":
        from r1omni.models import qwen_omni as module
    else:
        raise ValueError(f"unknown model family {family!r}")
    return module


def load_policy(directory: str | os.PathLike, **kwargs) -> Policy:
    """Load any saved model folder as a :class:`Policy` (random-init presets and released checkpoints), with
    its LoRA adapters when the folder holds some (:func:`r1omni.models.lora.save_policy`)."""
    from r1omni.models.lora import ADAPTER_CONFIG, load_adapters

    family = family_of(directory)
    check_weights(directory)
    policy = _family_module(family).load_policy(directory, **kwargs)
    if (Path(directory) / ADAPTER_CONFIG).is_file():
        load_adapters(policy, directory)
    return policy


def check_weights(directory: str | os.PathLike) -> None:
    """Raise naming the file when a model folder's weights are missing, or a ``.safetensors`` file in it
    (towers' sub-folders included) is cut short or damaged: found deep inside the loading, safetensors
    says only "incomplete metadata, file not fully covered", with no file name. Reads headers only."""
    from safetensors import SafetensorError, safe_open

    folder = Path(directory)
    if not any((folder / name).is_file() for name in _WEIGHTS_FILES):
        raise FileNotFoundError(f"{folder}: no weights file ({', '.join(_WEIGHTS_FILES)}); "
                                "the model folder is incomplete: save or copy it again")
    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(path, framework="pt") as weights:
                weights.keys()
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path}: damaged or cut-short weights file ({err}); save or copy the model "
                             "again") from None


def _all_presets() -> dict[str, tuple[str, Callable[..., Policy]]]:
    presets = {}
    for family in ("humanomni", "qwen_omni"):
        for name, builder in _family_module(family).PRESETS.items():
            presets[name] = (family, builder)
    return presets


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description (the builder's docstring)."""
    return {name: (builder.__doc__ or family).strip().splitlines()[0]
            for name, (family, builder) in _all_presets().items()}


def init_preset(name: str, seed: int = 0, **options) -> Policy:
    """A randomly initialised policy of a named preset; ``options`` go to the preset's builder
    (e.g. ``corpus=`` for the tiny tokenizer, dimension overrides)."""
    presets = _all_presets()
    if name not in presets:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(presets))}")
    return presets[name][1](seed=seed, **options)
