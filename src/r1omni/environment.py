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

:func:`pin_isa` does the same for the instruction set. numpy, OpenBLAS, torch (ATen, MKL, oneDNN),
OpenCV and FFmpeg choose kernels by the CPU they find, and kernels of different vector widths round
differently (measured here: numpy's ``exp`` / ``log1p`` / ``power`` differ between its AVX-512 and
AVX2 paths, FFmpeg's audio decoding between AVX2 and SSE4). Every command caps them at one level,
x86-64-v3 (AVX2 + FMA, every x86 server and desktop since 2013-2015), so an AVX-512 machine computes
what an AVX2 machine computes. A caller's own setting of one of those variables is kept (that is how
another CPU is emulated) and recorded; a machine below the level is not pinned, and says so.

Not here: choosing torch's thread count (the commands do that) or judging an environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import hashlib
import importlib.util
import os
import platform
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata

__all__ = ["describe_environment", "pin_thread_variables", "pin_isa", "isa_level", "pins_digest",
           "ffmpeg_cpu_flags_within", "PACKAGES",
           "THREAD_VARIABLES", "PINNED_THREADS", "PINNED_ISA"]

PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "av", "numpy")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PINNED_THREADS = "1"
"""What :func:`pin_thread_variables` sets: one thread per native pool at load time (torch's own count
is raised afterwards by ``torch.set_num_threads``; numpy's work here is small)."""
_NATIVE_MODULES = ("numpy", "torch", "cv2", "av")
_caller_variables: dict[str, str | None] | None = None

PINNED_ISA = "x86-64-v3"
"""The level :func:`pin_isa` caps every native library at (AVX2, FMA, BMI2: see the module docstring)."""
# /proc/cpuinfo flags each x86-64 level adds (psABI levels; lzcnt shows as abm).
_LEVEL_FLAGS = {
    "x86-64-v2": {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"},
    "x86-64-v3": {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}
# The variables that cap each library at x86-64-v3, read when the library loads.
_ISA_VARIABLES = {
    "ATEN_CPU_CAPABILITY": "avx2",            # torch's vectorised kernels
    "MKL_CBWR": "AVX2",                       # MKL (torch's BLAS): the AVX2 path, reproducible mode
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",             # oneDNN (torch's mkldnn kernels)
    "OPENBLAS_CORETYPE": "Haswell",           # numpy's and scipy's OpenBLAS (would fault below AVX2)
    "OPENCV_CPU_DISABLE": "AVX512-SKX",       # OpenCV's dispatched kernels
    "NPY_DISABLE_CPU_FEATURES": None,         # numpy's dispatched loops: names depend on its version
}
# FFmpeg's AV_CPU_FLAG_AVX512 | AV_CPU_FLAG_AVX512ICL (libavutil/cpu.h), cleared through av_force_cpu_flags.
_FFMPEG_AVX512_FLAGS = 0x100000 | 0x200000
_isa_record: dict | None = None


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


# Not part of the locked package set: the installer's own tools, torch (installed before the lock, its
# local version label differs by build) and the project itself.
_UNLOCKED = ("pip", "setuptools", "wheel", "torch", "r1omni")


def pins_digest(pins: Iterable[str]) -> str:
    """A short digest of ``name==version`` pins (lock lines or installed distributions), ignoring order,
    repeats, case, comments, a lock line's ``--hash`` options and the packages of ``_UNLOCKED``: equal
    digests, equal package sets."""
    kept = set()
    for line in pins:
        words = line.split("#", 1)[0].split()
        pin = words[0].lower().replace("_", "-") if words else ""
        if pin and pin.split("==", 1)[0] not in _UNLOCKED:
            kept.add(pin)
    return hashlib.sha256("\n".join(sorted(kept)).encode("utf-8")).hexdigest()[:16]


def _installed_digest() -> str:
    """:func:`pins_digest` of the installed distributions: equals ``pins_digest`` of requirements.lock's
    lines after ``make venv`` (an editable install that appears twice, pip's own version or the
    interpreter's bundled setuptools do not change it)."""
    return pins_digest(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())


@functools.cache
def isa_level() -> str | None:
    """The highest x86-64 level (``x86-64-v2`` .. ``v4``) this CPU supports, from /proc/cpuinfo; None on
    other architectures or where the flags cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((set(line.split(":", 1)[1].split()) for line in info if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    level = "x86-64-v1"
    for name, needed in _LEVEL_FLAGS.items():
        if not needed <= flags:
            break
        level = name
    return level


def _numpy_disable_features() -> str:
    """numpy's names for the dispatched features above x86-64-v3 (renamed in numpy 2.3)."""
    major, minor = (int(part) for part in (_version("numpy") or "2.3").split(".")[:2])
    if (major, minor) >= (2, 3):
        return "X86_V4 AVX512_ICL AVX512_SPR"
    return "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"


@functools.cache
def _libavutil() -> ctypes.CDLL | None:
    """PyAV's own libavutil (the copy its wheel bundles), loaded without importing av; None if not found."""
    spec = importlib.util.find_spec("av")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = spec.submodule_search_locations[0]
    found = sorted(glob.glob(os.path.join(package, os.pardir, "av.libs", "libavutil*.so*"))
                   + glob.glob(os.path.join(package, ".dylibs", "libavutil*.dylib")))
    return ctypes.CDLL(found[0]) if found else None


@contextlib.contextmanager
def ffmpeg_cpu_flags_within(keep: int) -> Iterator[None]:
    """FFmpeg's CPU flags reduced to ``keep`` (``AV_CPU_FLAG_*`` bits) for the block, then put back.

    FFmpeg chooses its kernels when a codec opens, so this covers codecs opened inside the block. The
    flags are process-wide: a decoder another thread opens meanwhile gets the reduced set too. No-op
    where PyAV's libavutil cannot be found."""
    avutil = _libavutil()
    if avutil is None:
        yield
        return
    before = avutil.av_get_cpu_flags()
    avutil.av_force_cpu_flags(ctypes.c_int(before & keep))
    try:
        yield
    finally:
        avutil.av_force_cpu_flags(ctypes.c_int(before))


def pin_isa() -> dict:
    """Cap numpy, OpenBLAS, torch, OpenCV and FFmpeg at :data:`PINNED_ISA` before they load (see the
    module docstring); returns the record :func:`describe_environment` reports under ``isa``.

    Variables the caller set are kept. Raises ``RuntimeError`` when one of the libraries is already
    imported (it would have read its variables already).
    """
    global _isa_record
    loaded = [name for name in _NATIVE_MODULES if name in sys.modules]
    if loaded:
        raise RuntimeError(f"pin_isa() must run before {' and '.join(loaded)} is imported "
                           "(they choose their kernels when they load)")
    machine = isa_level()
    record = {"machine": machine, "pinned": None, "caller": {name: os.environ.get(name) for name in _ISA_VARIABLES},
              "ffmpeg_cpu_flags": None}
    if machine not in ("x86-64-v3", "x86-64-v4"):
        _isa_record = record
        return dict(record)
    for name, value in _ISA_VARIABLES.items():
        os.environ.setdefault(name, value if value is not None else _numpy_disable_features())
    avutil = _libavutil()
    if avutil is not None:
        avutil.av_force_cpu_flags(ctypes.c_int(avutil.av_get_cpu_flags() & ~_FFMPEG_AVX512_FLAGS))
        record["ffmpeg_cpu_flags"] = hex(avutil.av_get_cpu_flags())
    record["pinned"] = PINNED_ISA
    _isa_record = record
    return dict(record)


def _isa_description() -> dict:
    """What the libraries chose: the pin's record (or none) and torch's kernel level."""
    import torch

    record = dict(_isa_record) if _isa_record is not None else {"machine": isa_level(), "pinned": None}
    record["variables"] = {name: os.environ.get(name) for name in _ISA_VARIABLES}
    record["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return record


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
    processor, its instruction-set level and what the libraries were capped at, and an install digest."""
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
        "isa": _isa_description(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "installed_digest": _installed_digest(),
    }
