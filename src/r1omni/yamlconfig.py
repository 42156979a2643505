"""Typed dataclass configs from YAML files plus ``key=value`` overrides from the command line.

YAML only sets fields: an unknown key is an error that lists the known ones, a key a config class
retired (its ``RETIRED_KEYS``) an error that says why it went, a value of the wrong type an error naming
the key, and the dataclass's own ``__post_init__`` validates combinations.
Nested dataclasses are set with dotted keys (``sampling.temperature=0.7``).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import textwrap
import types
import typing
from typing import Any, TypeVar

import yaml

__all__ = ["load_config", "config_from_dict", "config_to_dict", "config_differences", "config_keys", "field_docs",
           "ConfigKey", "ConfigError"]

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


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    """One key a config file (or a ``key=value`` override) may set, as ``--help`` lists it."""

    key: str
    """Dotted for nested configs (``optim.lr``)."""
    type: str
    default: Any
    """``dataclasses.MISSING`` for a key the config requires."""
    doc: str
    """The field's docstring; empty where the field has none."""


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass and of its bases: where every field is
    documented once, so that ``--help`` reads the text the code carries instead of a copy that goes stale.
    Empty for a class whose source cannot be read (e.g. a frozen executable)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, IndexError, AttributeError):
            continue
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return hint.__name__ if isinstance(hint, type) and not typing.get_args(hint) else str(hint).replace("typing.", "")


def config_keys(cls: type, defaults: Any = None, prefix: str = "") -> list[ConfigKey]:
    """Every key of a config dataclass, nested configs' keys dotted, with its type, its default (a nested
    config's defaults are those of the instance its field starts as: GRPO's ``optim.lr`` is GRPO's, not
    ``OptimConfig``'s) and its docstring (:func:`field_docs`)."""
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    keys = []
    for field in (f for f in dataclasses.fields(cls) if f.init):
        if defaults is not None:
            default = getattr(defaults, field.name)
        elif field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint) and default is not dataclasses.MISSING:
            keys += config_keys(hint, default, f"{prefix}{field.name}.")
        else:
            keys.append(ConfigKey(prefix + field.name, _type_name(hint), default, docs.get(field.name, "")))
    return keys
