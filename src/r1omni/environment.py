"""What produced a result: package versions, thread settings and the processor, recorded beside it.

The same seed gives the same numbers only with the same versions, the same torch thread count
and the same kind of CPU (float reductions are ordered by thread and by vector width). Every
result file (the demo's ``results.json``, ``r1omni eval``'s ``metrics.json``) carries this record,
so two results can be compared knowing whether they could have been equal.

:func:`pin_thread_variables` is how a command makes its numbers independent of the caller's
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``: native libraries (OpenMP,
MKL, numpy's OpenBLAS) read them once, when they load, and some split float reductions by them, so
the variables are set to one fixed value before numpy or torch is imported; the command then sets
torch's own thread count. The caller's values are still what the record reports.

Not here: choosing torch's thread count (the commands do that) or judging an environment.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata

__all__ = ["describe_environment", "pin_thread_variables", "PACKAGES", "THREAD_VARIABLES", "PINNED_THREADS"]

PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "av", "numpy")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PINNED_THREADS = "1"
"""What :func:`pin_thread_variables` sets: one thread per native pool at load time (torch's own count
is raised afterwards by ``torch.set_num_threads``; numpy's work here is small)."""
_NATIVE_MODULES = ("numpy", "torch")
_caller_variables: dict[str, str | None] | None = None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall back to what platform knows
    return platform.processor() or platform.machine()


def _installed_digest() -> str:
    """A short digest of every installed distribution's name and version: equal digests, equal installs."""
    pins = sorted(f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions())
    return hashlib.sha256("\n".join(pins).encode("utf-8")).hexdigest()[:16]


def pin_thread_variables() -> dict[str, str | None]:
    """Set every variable of :data:`THREAD_VARIABLES` to :data:`PINNED_THREADS` before the native
    libraries load; returns the caller's values (also reported by :func:`describe_environment`).

    Raises ``RuntimeError`` when numpy or torch is already imported: the variables would then be
    read too late to matter, and results could silently depend on the caller's settings.
    """
    global _caller_variables
    loaded = [name for name in _NATIVE_MODULES if name in sys.modules]
    if loaded:
        raise RuntimeError(f"pin_thread_variables() must run before {' and '.join(loaded)} is imported "
                           "(their thread pools read the variables when they load)")
    if _caller_variables is None:
        _caller_variables = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, PINNED_THREADS))
    return dict(_caller_variables)


def describe_environment() -> dict:
    """Versions, torch threads, the caller's thread variables (and what this process pinned them to),
    processor and an install digest."""
    import torch

    current = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    return {
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_variables": current if _caller_variables is None else dict(_caller_variables),
        "pinned_thread_variables": None if _caller_variables is None else current,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "installed_digest": _installed_digest(),
    }
