"""r1omni.environment: the record beside every result, and the thread variables a command pins before
numpy / torch load (in a fresh interpreter: this one has loaded both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from r1omni.environment import THREAD_VARIABLES, describe_environment, pin_thread_variables

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
