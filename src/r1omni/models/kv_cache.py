"""The KV cache's keyword, as the installed transformers spells it.

transformers 5.25 renamed ``past_key_values`` to ``cache`` (in ``forward`` arguments, in
``generate``'s calls and in model outputs) and warns that the old name goes away in 5.40; 5.23 and
5.24 know only ``past_key_values``. Model code here never writes either name: it reads the cache
with :func:`pop_cache` (whichever name the caller used), passes it on under
:func:`cache_parameter` of the callee, and builds outputs with :data:`OUTPUT_CACHE_FIELD`. So the
same code runs on both sides of the rename without a deprecation warning from us.

Not here: cache classes or cache arithmetic (transformers' ``Cache`` does that).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

from transformers.modeling_outputs import CausalLMOutputWithPast

__all__ = ["CACHE_NAMES", "OUTPUT_CACHE_FIELD", "cache_parameter", "pop_cache", "output_cache"]

# New name first: the one a caller should use when the callee takes both.
CACHE_NAMES = ("cache", "past_key_values")

OUTPUT_CACHE_FIELD = next(name for name in CACHE_NAMES
                          if name in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)})
"""The name of the cache field of transformers' model outputs."""


@functools.lru_cache(maxsize=None)
def cache_parameter(function: Callable[..., Any]) -> str:
    """The keyword under which ``function`` (a model's ``forward``) takes the KV cache.

    >>> cache_parameter(lambda input_ids, past_key_values=None: None)
    'past_key_values'
    """
    parameters = inspect.signature(function).parameters  # follows __wrapped__ through deprecation decorators
    for name in CACHE_NAMES:
        if name in parameters:
            return name
    raise TypeError(f"{getattr(function, '__qualname__', function)} takes no KV cache argument "
                    f"(looked for {', '.join(CACHE_NAMES)})")


def pop_cache(kwargs: dict[str, Any]) -> Any:
    """Remove and return the cache from ``kwargs``, whichever name the caller used (None if absent).

    >>> kwargs = {"past_key_values": "kv", "use_cache": True}
    >>> pop_cache(kwargs), kwargs
    ('kv', {'use_cache': True})
    """
    given = {name: value for name in CACHE_NAMES if (value := kwargs.pop(name, None)) is not None}
    if len(given) > 1:
        raise TypeError(f"the KV cache was passed twice, as {' and '.join(given)}; pass one")
    return next(iter(given.values()), None)


def output_cache(output: Any) -> Any:
    """The cache held by a transformers model output (None when it holds none)."""
    return getattr(output, OUTPUT_CACHE_FIELD, None)
