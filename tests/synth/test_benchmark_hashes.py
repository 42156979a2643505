"""The generated benchmark is one benchmark: the quick preset (seed 0) built here, with one or two worker
processes and under emulations of older CPUs, is byte for byte the build whose hashes are committed
beside this file (``quick-seed0.sha256``, written by ``sha256sum`` conventions: hash, two spaces, path).

A machine whose CPU takes other paths in rendering, resampling or encoding fails here, naming the
files that differ. The emulations cap what each library may use, as a machine without those
instructions would: numpy (``NPY_DISABLE_CPU_FEATURES``), OpenBLAS (``OPENBLAS_CORETYPE``), torch
(``ATEN_CPU_CAPABILITY``), libvpx (``VPX_SIMD_CAPS_MASK``) and FFmpeg (``av_force_cpu_flags``). x264
runs without assembly anyway; libopus picks its level by CPU with no override, so it is not emulated.

If a change to the generator is meant to change the files, bump ``GENERATOR_VERSION`` and rewrite the
committed hashes with ``python tests/synth/test_benchmark_hashes.py`` (it builds the preset and
writes the file).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from r1omni.environment import isa_level
from r1omni.synth import generate_benchmark
from r1omni.synth.generate import file_hashes

COMMITTED = Path(__file__).with_name("quick-seed0.sha256")
# (name, environment variables, FFmpeg CPU-flag mask, the x86-64 level the machine needs for it)
EMULATIONS = {
    # An AVX2 machine (x86-64-v3): everything above it switched off.
    "avx2": ({"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell",
              "ATEN_CPU_CAPABILITY": "avx2", "VPX_SIMD_CAPS_MASK": "0xFF"}, 0xFFCFFFFF, "x86-64-v3"),
    # An SSE4.2 machine (x86-64-v2, 2008-2013): no AVX of any width.
    "sse4.2": ({"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
                "OPENBLAS_CORETYPE": "Nehalem", "ATEN_CPU_CAPABILITY": "default", "VPX_SIMD_CAPS_MASK": "0x3F"},
               0x3FF | 0x1000, "x86-64-v2"),
}
# Builds the preset in a fresh interpreter after capping FFmpeg (before anything loads it).
EMULATED_BUILD = """
import ctypes, json, sys
from r1omni.environment import _libavutil
avutil = _libavutil()
avutil.av_force_cpu_flags(ctypes.c_int(avutil.av_get_cpu_flags() & int(sys.argv[2])))
from r1omni.synth import generate_benchmark
from r1omni.synth.generate import file_hashes
generate_benchmark(sys.argv[1], "quick", seed=0, progress=False, workers=2)
print(json.dumps(file_hashes(sys.argv[1])))
"""
_LEVELS = ("x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v4")


def read_committed() -> dict[str, str]:
    pairs = (line.split("  ", 1) for line in COMMITTED.read_text().splitlines() if line.strip())
    return {path: digest for digest, path in pairs}


def assert_same_as_committed(hashes: dict[str, str]) -> None:
    committed = read_committed()
    missing = sorted(set(committed) - set(hashes))
    extra = sorted(set(hashes) - set(committed))
    differ = sorted(name for name in set(committed) & set(hashes) if committed[name] != hashes[name])
    assert not (missing or extra or differ), (
        f"this build differs from {COMMITTED.name}: {len(differ)} file(s) differ (first: {differ[:5]}), "
        f"{len(missing)} missing (first: {missing[:3]}), {len(extra)} extra (first: {extra[:3]}); "
        f"machine {platform.machine()} {isa_level()}")


@pytest.mark.parametrize("workers", [1, 2])
def test_the_quick_benchmark_is_the_committed_one(tmp_path, workers):
    generate_benchmark(tmp_path, "quick", seed=0, progress=False, workers=workers)
    assert_same_as_committed(file_hashes(tmp_path))


@pytest.mark.parametrize("name", sorted(EMULATIONS))
def test_the_quick_benchmark_is_the_committed_one_on_an_emulated_older_cpu(tmp_path, name):
    variables, ffmpeg_mask, needs = EMULATIONS[name]
    machine = isa_level()
    if machine is None or _LEVELS.index(machine) < _LEVELS.index(needs):
        pytest.skip(f"emulating {name} needs an {needs} machine; this one is {machine or platform.machine()}")
    done = subprocess.run([sys.executable, "-c", EMULATED_BUILD, str(tmp_path), str(ffmpeg_mask)],
                          env={**os.environ, **variables}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_as_committed(json.loads(done.stdout))


if __name__ == "__main__":  # rewrite the committed hashes (see the module docstring)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        generate_benchmark(folder, "quick", seed=0, progress=False, workers=1)
        COMMITTED.write_text("".join(f"{digest}  {path}\n" for path, digest in file_hashes(folder).items()))
    print(f"wrote {COMMITTED}")
