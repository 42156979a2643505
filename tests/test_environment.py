"""r1omni.environment: the record beside every result, and the thread variables and instruction-set caps a
command pins before numpy / torch load (in a fresh interpreter: this one has loaded both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pathlib import Path

from r1omni.environment import (PINNED_ISA, THREAD_VARIABLES, describe_environment, ffmpeg_cpu_flags_within, isa_level,
                                pin_isa, pin_thread_variables, pins_digest)

LOCK = Path(__file__).parents[1] / "requirements.lock"

PROBE = """
import json, os, sys
from r1omni.environment import pin_thread_variables, describe_environment
caller = pin_thread_variables()
import numpy
record = describe_environment()
print(json.dumps({"caller": caller, "now": {k: os.environ.get(k) for k in caller}, "record": record}))
"""


def test_a_command_pins_the_variables_and_records_the_callers():
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "7"}
    env.pop("OPENBLAS_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen["caller"] == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "7", "OPENBLAS_NUM_THREADS": None}
    assert seen["now"] == dict.fromkeys(THREAD_VARIABLES, "1")
    assert seen["record"]["thread_variables"] == seen["caller"]
    assert seen["record"]["pinned_thread_variables"] == seen["now"]


def test_pinning_after_numpy_loaded_is_refused():
    with pytest.raises(RuntimeError, match="before numpy"):
        pin_thread_variables()


def test_the_record_without_pinning_reports_the_variables_as_they_are():
    record = describe_environment()
    assert record["thread_variables"] == {name: os.environ.get(name) for name in THREAD_VARIABLES}
    assert record["pinned_thread_variables"] is None
    assert record["torch"] and record["cpu_count"]


ISA_PROBE = """
import json, os
from r1omni.environment import pin_isa, describe_environment
pinned = pin_isa()
import numpy, torch, av
print(json.dumps({"pinned": pinned, "record": describe_environment()["isa"]}))
"""
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                 "OPENBLAS_CORETYPE", "OPENCV_CPU_DISABLE", "NPY_DISABLE_CPU_FEATURES")


def _isa_probe(**variables):
    env = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES}
    done = subprocess.run([sys.executable, "-c", ISA_PROBE], env={**env, **variables}, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def test_a_command_caps_the_native_kernels_at_avx2_and_keeps_what_the_caller_set():
    if isa_level() not in ("x86-64-v3", "x86-64-v4"):
        pytest.skip(f"the pin applies to x86-64-v3 and above; this machine is {isa_level()}")
    seen = _isa_probe(ATEN_CPU_CAPABILITY="default")
    record = seen["record"]
    assert record["machine"] == isa_level() and record["pinned"] == PINNED_ISA
    assert record["caller"]["ATEN_CPU_CAPABILITY"] == "default" and record["caller"]["MKL_CBWR"] is None
    assert record["variables"]["ATEN_CPU_CAPABILITY"] == "default"        # the caller's emulation wins
    assert record["torch_cpu_capability"] == "DEFAULT"
    assert record["variables"]["MKL_CBWR"] == "AVX2" and record["variables"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert int(record["ffmpeg_cpu_flags"], 16) & 0x300000 == 0           # no AVX-512 kernels in FFmpeg
    assert _isa_probe()["record"]["torch_cpu_capability"] == "AVX2"


def test_pinning_the_isa_after_the_libraries_loaded_is_refused():
    with pytest.raises(RuntimeError, match="before numpy"):
        pin_isa()


def test_ffmpeg_flags_are_reduced_inside_the_block_and_restored_after():
    from r1omni.environment import _libavutil

    avutil = _libavutil()
    if avutil is None:
        pytest.skip("PyAV's libavutil is not where its wheel puts it")
    before = avutil.av_get_cpu_flags()
    with ffmpeg_cpu_flags_within(0x1 | 0x10):
        assert avutil.av_get_cpu_flags() == before & (0x1 | 0x10)
    assert avutil.av_get_cpu_flags() == before


def test_the_install_digest_ignores_order_case_repeats_hashes_tooling_and_torch():
    pins = ["numpy==2.4.6", "PyYAML==6.0.3", "# a comment", "av==18.1.0"]
    assert pins_digest(pins) == pins_digest(["av==18.1.0 --hash=sha256:0a1b --hash=sha256:2c3d  # a note",
                                             "pyyaml==6.0.3", "numpy==2.4.6", "av==18.1.0",
                                             "pip==26.3", "setuptools==80.1", "torch==2.13.0+cpu",
                                             "r1omni==0.1.0"])
    assert pins_digest(pins) != pins_digest(["numpy==2.4.5", "pyyaml==6.0.3", "av==18.1.0"])


def test_the_install_digest_of_a_locked_install_is_the_locks():
    from importlib import metadata

    lock = [line.split()[0] for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    drifted = [pin for pin in lock if metadata.version(pin.split("==")[0]) != pin.split("==")[1]]
    if drifted:
        pytest.skip(f"not the locked install ({len(drifted)} versions differ, e.g. {drifted[0]}): make test-latest")
    assert describe_environment()["installed_digest"] == pins_digest(lock)
