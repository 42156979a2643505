"""What produced a result: package versions, thread settings and the processor, recorded beside it.

The same seed gives the same numbers only with the same versions, the same torch thread count
and the same kind of CPU (float reductions are ordered by thread and by vector width). Every
result file (the demo's ``results.json``, ``r1omni eval``'s ``metrics.json``) carries this record,
so two results can be compared knowing whether they could have been equal.

Not here: setting threads (the commands do that) or judging an environment.
"""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata

__all__ = ["describe_environment", "PACKAGES", "THREAD_VARIABLES"]

PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "av", "numpy")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


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


def describe_environment() -> dict:
    """Versions, torch threads, the caller's thread variables, processor and an install digest."""
    import torch

    return {
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "installed_digest": _installed_digest(),
    }
