"""Where a policy runs and in which float type: the one default device, the named dtypes, the record.

``predict``, ``eval``, ``explain`` and ``serve`` all load a model folder onto :func:`default_device`
unless told otherwise, so a GPU user's evaluation never silently runs on the CPU; every output they
write carries :func:`placement` of the policy that made it, because the same weights give slightly
different answers in bfloat16 than in float32, and on a GPU than on a CPU.
"""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "default_device", "dtype_named", "placement"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The float types a model can be loaded in, by the name the command line and the records use."""


def default_device() -> str:
    """CUDA when torch sees a GPU, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_named(name: str) -> torch.dtype:
    """The torch dtype of a name in :data:`DTYPES`; any other name is an error that lists them."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}") from None


def placement(module: torch.nn.Module) -> dict[str, str | None]:
    """``{"device": ..., "dtype": ...}`` of a module's first floating-point parameter (where it computes);
    both None for a module without one (a stand-in model), which has nothing to record."""
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return {"device": str(parameter.device), "dtype": str(parameter.dtype).removeprefix("torch.")}
    return {"device": None, "dtype": None}
