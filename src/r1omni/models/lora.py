"""LoRA adapters (peft) on a policy's language model: added, switched off, saved, merged, read back.

Full fine-tuning is the paper's recipe and stays the default; LoRA is how 3B-7B omni models train on
one GPU. The adapters go into the policy's module *in place* (``peft.inject_adapter_in_model``), so the
policy keeps its class, its ``parts()`` and its forward, and every family gets them alike. Only linear
maps of the language model are adapted (``target_modules`` names them by their last name, as peft does):
the vision and audio towers have ``q_proj`` too, and stay as they are.

What reads weights directly must ask this module for them. :func:`effective_linear` is the weight and
bias an adapted linear map applies (the frozen base plus each active adapter's delta), which the fast
decoding step (:class:`r1omni.models.decoding.Qwen2Step`) stacks instead of ``q_proj.weight``, peft's
frozen base weight: read alone, it would roll a LoRA policy out as its base model. Adapter variants
whose effect is not a delta of the weight (DoRA, LoRA biases) are refused there with a message.

A saved folder holds the base model as the family saves it plus :data:`ADAPTER_CONFIG` and
:data:`ADAPTER_WEIGHTS` (:func:`save_policy`); :func:`r1omni.models.load_policy` adds the adapters back
when it finds them. ``merge=True`` saves base + adapters as one plain model instead, which loads
without peft. The reference model of LoRA training is the base: the policy with its adapters switched
off (:func:`adapters_disabled`), no second copy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["LoraSettings", "add_adapters", "adapter_layers", "adapters_disabled", "effective_linear",
           "save_policy", "load_adapters", "ADAPTER_CONFIG", "ADAPTER_WEIGHTS"]

ADAPTER_CONFIG = "lora_adapter.json"
ADAPTER_WEIGHTS = "lora_adapter.safetensors"
_ADAPTER = "default"   # peft's adapter name; one adapter per policy


@dataclass
class LoraSettings:
    """LoRA on the language model's linear maps (``lora:`` in the SFT and GRPO configs)."""

    r: int = 16
    """Rank of each adapter."""
    alpha: float = 32.0
    """Scale numerator: the adapter's output is multiplied by alpha / r."""
    dropout: float = 0.05
    """Dropout on the adapter's input while training."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Last names of the language model's linear maps that get an adapter."""
    merge: bool = False
    """Save the model with the adapters merged into the weights (a plain model folder) instead of the base
    model plus the adapter files."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not self.alpha > 0:
            raise ValueError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one linear map (e.g. q_proj)")


def _require_peft():
    try:
        import peft
    except ImportError:
        raise ImportError("LoRA needs peft: pip install 'r1omni[lora]'") from None
    return peft


def _targets(policy, names: list[str]) -> list[str]:
    """Full names of the language model's linear maps whose last name is in ``names``; a name that
    matches none is an error (a typo would otherwise train nothing)."""
    module_names = {id(module): name for name, module in policy.module.named_modules()}
    found: list[str] = []
    for part in policy.parts().get("llm", []):
        prefix = module_names[id(part)]
        candidates = [("", part)] if isinstance(part, nn.Linear) else part.named_modules()
        for name, module in candidates:
            full = ".".join(filter(None, (prefix, name)))
            if isinstance(module, nn.Linear) and full.rsplit(".", 1)[-1] in names:
                found.append(full)
    unmatched = sorted(set(names) - {full.rsplit(".", 1)[-1] for full in found})
    if unmatched:
        raise ValueError(f"lora.target_modules {unmatched} match no linear map of the {policy.family} language "
                         "model (names are last names, e.g. q_proj)")
    return found


def add_adapters(policy, settings: LoraSettings) -> int:
    """Put a fresh adapter on each target of the policy's language model (in place) and make the language
    model's own weights frozen and the adapters trainable; other parts keep their ``requires_grad``.
    Returns the adapters' parameter count."""
    peft = _require_peft()
    targets = _targets(policy, settings.target_modules)
    config = peft.LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                             target_modules=targets)
    for part in policy.parts().get("llm", []):
        part.requires_grad_(False)
    peft.inject_adapter_in_model(config, policy.module, adapter_name=_ADAPTER)
    adapters = [p for name, p in policy.module.named_parameters() if ".lora_" in name]
    for parameter in adapters:
        parameter.requires_grad_(True)
    return sum(p.numel() for p in adapters)


def adapter_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, layer) of every adapted layer in ``module`` (peft's tuner layers hold ``base_layer``)."""
    return [(name, child) for name, child in module.named_modules() if hasattr(child, "base_layer")
            and hasattr(child, "enable_adapters")]


@contextmanager
def adapters_disabled(module: nn.Module) -> Iterator[None]:
    """Inside, every adapter of ``module`` is off (the base model computes); each is restored after."""
    layers = [layer for _, layer in adapter_layers(module)]
    enabled = [not layer.disable_adapters for layer in layers]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer, on in zip(layers, enabled):
            layer.enable_adapters(on)


def effective_linear(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) that a linear map applies: its own, or for a peft LoRA layer the base weight plus
    the delta of each active adapter not merged into it (none while adapters are disabled)."""
    if not hasattr(module, "base_layer"):
        return module.weight, module.bias
    base = module.get_base_layer()
    if not hasattr(module, "get_delta_weight") or not isinstance(base, nn.Linear):
        raise ValueError(f"{type(module).__name__}: an adapter the fast decoding step cannot read (only LoRA on "
                         "linear maps); merge it into the weights or remove it")
    weight = base.weight
    if module.disable_adapters:
        return weight, base.bias
    for name in module.active_adapters:
        if name not in module.lora_A or name in module.merged_adapters:
            continue
        if getattr(module, "use_dora", {}).get(name) or getattr(module, "lora_bias", {}).get(name) \
                or getattr(module, "lora_variant", {}).get(name) is not None:
            raise ValueError(f"adapter {name!r} is a LoRA variant (DoRA, LoRA bias, ...) the fast decoding step "
                             "cannot read as a weight delta; use plain LoRA or merge it before decoding")
        weight = weight + module.get_delta_weight(name)
    return weight, base.bias


@contextmanager
def _base_layers(module: nn.Module, merged: bool) -> Iterator[None]:
    """Inside, each adapted layer is replaced by its base layer (so the module saves under the family's own
    names); with ``merged`` the base weights hold base + adapter. Everything is restored after, exactly
    (the base weights from copies, not by subtracting the delta again)."""
    layers = adapter_layers(module)
    saved = []
    with torch.no_grad():
        for name, layer in layers:
            parent_name, _, child = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            base = layer.get_base_layer()
            original = base.weight.detach().clone() if merged else None
            if merged:
                base.weight.copy_(effective_linear(layer)[0])
            setattr(parent, child, base)
            saved.append((parent, child, layer, base, original))
    try:
        yield
    finally:
        with torch.no_grad():
            for parent, child, layer, base, original in saved:
                if original is not None:
                    base.weight.copy_(original)
                setattr(parent, child, layer)


def save_policy(policy, directory: str | os.PathLike, merge: bool = False, card=None) -> None:
    """Save a policy: as the family saves it when it has no adapters; else the base model plus
    :data:`ADAPTER_CONFIG` and :data:`ADAPTER_WEIGHTS` (``merge``: one plain model, base + adapters).
    Atomic: the folder appears whole or not at all. ``card``: the model card's facts, passed to the family's
    ``save``."""
    from safetensors.torch import save_file

    from r1omni.atomic import atomic_dir, atomic_write_text

    layers = adapter_layers(policy.module)
    if not layers:
        policy.save(directory, card=card)
        return
    with atomic_dir(directory) as tmp:
        with _base_layers(policy.module, merged=merge):
            policy.save(tmp, card=card)
        if merge:
            return
        first = layers[0][1]
        settings = {"r": first.r[_ADAPTER], "alpha": first.lora_alpha[_ADAPTER],
                    "dropout": float(getattr(first.lora_dropout[_ADAPTER], "p", 0.0)),
                    "target_modules": [name for name, _ in layers]}
        state = {name: tensor.detach().contiguous() for name, tensor in policy.module.state_dict().items()
                 if ".lora_" in name}
        save_file(state, str(Path(tmp) / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        atomic_write_text(Path(tmp) / ADAPTER_CONFIG, json.dumps(settings, indent=2))


def load_adapters(policy, directory: str | os.PathLike) -> None:
    """Add the adapters saved in ``directory`` (:func:`save_policy`) to a policy loaded from its base model;
    a file that does not fit the model is an error naming it."""
    from safetensors.torch import load_file

    peft = _require_peft()
    config_path, weights_path = Path(directory) / ADAPTER_CONFIG, Path(directory) / ADAPTER_WEIGHTS
    try:
        saved = json.loads(config_path.read_text())
        config = peft.LoraConfig(r=saved["r"], lora_alpha=saved["alpha"], lora_dropout=saved["dropout"],
                                 target_modules=list(saved["target_modules"]))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{config_path}: not a readable LoRA adapter config ({err})") from None
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: missing; {config_path.name} names adapters whose weights are not "
                                "there: save or copy the model again")
    peft.inject_adapter_in_model(config, policy.module, adapter_name=_ADAPTER)
    device = next(policy.module.parameters()).device
    state = load_file(str(weights_path), device=str(device))
    expected = {name for name in policy.module.state_dict() if ".lora_" in name}
    if set(state) != expected:
        raise ValueError(f"{weights_path}: adapter weights do not fit the model "
                         f"({len(set(state) - expected)} unknown, {len(expected - set(state))} missing)")
    dtype = next(p for p in policy.module.parameters() if p.is_floating_point()).dtype
    policy.module.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
