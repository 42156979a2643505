"""Typed dataclass configs from YAML files plus ``key=value`` overrides from the command line.

YAML only sets fields: an unknown key is an error that lists the known ones, a key a config class
retired (its ``RETIRED_KEYS``) an error that says why it went, a value of the wrong type an error naming
the key, and the dataclass's own ``__post_init__`` validates combinations.
Nested dataclasses are set with dotted keys (``sampling.temperature=0.7``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, TypeVar

import yaml

__all__ = ["load_config", "config_from_dict", "config_to_dict", "config_differences", "ConfigError"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the config dataclass."""


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} fits none of {hint}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {hint.__name__}, got {value!r}")
        return config_from_dict(hint, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        key_type, value_type = args or (Any, Any)
        return {_coerce(k, key_type, key): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return str(value)
    return value


def config_from_dict(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from a mapping, checking every key and type."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    retired = getattr(cls, "RETIRED_KEYS", {})   # key -> why it is gone and what to do instead
    if set(values) & set(retired):
        raise ConfigError("; ".join(f"{prefix}{key}: {retired[key]}" for key in sorted(set(values) & set(retired))))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]} for {cls.__name__}; "
                          f"known: {sorted(prefix + k for k in known)}")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__}: {err}") from None


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. lr=1e-5, sampling.temperature=0.7)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Read ``cls`` from a YAML file (or defaults when None), then apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        values = loaded or {}
    for text in overrides or []:
        keys, value = _parse_override(text)
        node = values
        for part in keys[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[keys[-1]] = value
    try:
        return config_from_dict(cls, values)
    except ConfigError as err:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{err}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (for logs and checkpoints)."""
    return dataclasses.asdict(config)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key old -> new`` for every (dotted, nested) key whose value differs, for messages that say what
    changed between two settings dicts.

    >>> config_differences({"seed": 1, "optim": {"lr": 0.1}}, {"seed": 1, "optim": {"lr": 0.2}, "x": 3})
    ['optim.lr 0.1 -> 0.2', 'x <absent> -> 3']
    """
    before, after = _flatten(old), _flatten(new)

    def show(values: dict[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else "<absent>"

    return [f"{key} {show(before, key)} -> {show(after, key)}" for key in sorted(set(before) | set(after))
            if key not in before or key not in after or before[key] != after[key]]
