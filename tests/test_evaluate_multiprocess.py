"""Evaluation and attribution under ``accelerate launch`` with two CPU processes (gloo) equal one process,
row for row.

``mp_eval_script.py`` evaluates the tiny preset on seven clips (one of them unreadable) in batches of
two, once as a plain process and once as two launched processes. The two-process run must share the
work (each process answers its own batches, none twice) and still write the one-process folder: the
same ``predictions.jsonl`` in the same order, the same metrics. Launching as in
``tests/train/test_multiprocess.py`` (the torchrun-based launcher with ``ACCELERATE_USE_CPU=true``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r1omni.media import write_clip
from r1omni.models import init_preset
from r1omni.schema import Sample, write_samples

SCRIPT = Path(__file__).with_name("mp_eval_script.py")
# PYTHONFAULTHANDLER: a process killed by a signal (SIGABRT from native code) prints every thread's Python stack.
ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
       "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}
TIMEOUT_SECONDS = 300
# What differs between runs whatever they compute: timings, the processes, the machine record.
RUN_FIELDS = {"seconds", "clips_per_second", "processes", "environment"}


def run(command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` with :data:`ENV`; a failure shows how it ended (the signal by name) and what it wrote.

    Under ``accelerate launch`` the child's own message (``terminate called ...``, a traceback) comes before
    the launcher's report of the failure, which alone fills a few thousand characters, and progress bars
    (a line per redraw once carriage returns are read as line ends) would push both out of a plain tail: they
    are left out here."""
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    if done.returncode != 0:
        ended = (f"killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
                 else f"exit status {done.returncode}")
        lines = [line for line in done.stderr.splitlines() if not line.rstrip().endswith(("it/s]", "s/it]"))]
        pytest.fail(f"{' '.join(command)}\n{ended}\n--- stdout (end) ---\n{done.stdout[-2000:]}\n"
                    f"--- stderr (progress bars left out; end) ---\n" + "\n".join(lines)[-12000:], pytrace=False)
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("mp_eval")
    init_preset("qwen2.5-omni-tiny", seed=3).save(folder / "model")
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    samples = []
    for index, label in enumerate(("happy", "sad", "angry", "neutral", "happy", "sad", "angry")):
        path = folder / f"clip{index}.mp4"
        if index == 3:
            path.write_bytes(b"not a video\n" * 50)
        else:
            write_clip(path, rng.integers(0, 255, (8, 56, 56, 3), dtype=np.uint8), 8, tone * (1 + index / 4))
        samples.append(Sample(id=f"clip{index}", corpus="synth", video=str(path), label=label))
    write_samples(folder / "clips.jsonl", samples)
    args = [str(folder / "model"), str(folder / "clips.jsonl")]
    run([sys.executable, str(SCRIPT), *args, str(folder / "one" / "eval")])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    run([*launch, str(SCRIPT), *args, str(folder / "two" / "eval")])
    return {1: folder / "one", 2: folder / "two"}


def test_two_processes_share_the_clips(runs):
    records = [json.loads((runs[2] / f"answered-{rank}.json").read_text()) for rank in range(2)]
    assert [(r["rank"], r["processes"]) for r in records] == [(0, 2), (1, 2)]
    # batches of two in manifest order, taken in turn: process 0 the 1st and 3rd, process 1 the 2nd and 4th
    assert records[0]["answered"] == ["clip0", "clip1", "clip4", "clip5"]
    assert records[1]["answered"] == ["clip2", "clip3", "clip6"]
    single = json.loads((runs[1] / "answered-0.json").read_text())
    assert single["processes"] == 1 and single["answered"] == [f"clip{i}" for i in range(7)]


def test_two_processes_write_the_one_process_folder_row_for_row(runs):
    rows = {n: [json.loads(line) for line in (runs[n] / "eval" / "predictions.jsonl").read_text().splitlines()]
            for n in runs}
    assert [r["id"] for r in rows[2]] == [f"clip{i}" for i in range(7)]
    assert rows[2] == rows[1]
    assert rows[1][3]["error"] is not None and rows[1][0]["error"] is None
    metrics = {n: json.loads((runs[n] / "eval" / "metrics.json").read_text()) for n in runs}
    assert (metrics[1]["processes"], metrics[2]["processes"]) == (1, 2)
    assert {k: v for k, v in metrics[2].items() if k not in RUN_FIELDS} == \
        {k: v for k, v in metrics[1].items() if k not in RUN_FIELDS}
    assert (runs[2] / "eval" / "report.md").read_text() == (runs[1] / "eval" / "report.md").read_text()


def test_two_processes_attribute_as_one_and_each_returns_everything(runs):
    single = json.loads((runs[1] / "attribution-0.json").read_text())
    assert [r["id"] for r in single["results"]] == [f"clip{i}" for i in (0, 1, 2, 4, 5, 6)]
    assert single["skipped"] == 1
    for rank in range(2):
        assert json.loads((runs[2] / f"attribution-{rank}.json").read_text()) == single


LEAVE = """
import atexit, sys
import torch.distributed as dist
from r1omni.models.placement import leave_group_at_exit
leave_group_at_exit()                       # no group yet: nothing to leave, nothing registered
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
leave_group_at_exit(); leave_group_at_exit()
atexit._run_exitfuncs()
print(dist.is_initialized())
"""


def test_a_process_destroys_its_group_before_the_interpreter_ends(tmp_path):
    # Left standing, gloo's threads abort the process during finalisation, at random (CI saw SIGABRT in rank 1).
    done = run([sys.executable, "-c", LEAVE, str(tmp_path / "store")])
    assert done.stdout.split() == ["False"]


CAPTURED = """
import atexit, sys
import psutil
import torch.distributed as dist
from r1omni.models.placement import leave_group_at_exit
assert "torch.distributed.nn" not in sys.modules
threads = psutil.Process().num_threads
before = threads()
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
started = threads() > before                # gloo's worker threads
import torch.distributed.nn.functional as functional     # as transformers does when it loads a model
held = functional.broadcast.__defaults__[-1] is dist.group.WORLD
leave_group_at_exit()
atexit._run_exitfuncs()
print(started, held, threads() == before, functional.broadcast.__defaults__[-1])
"""


def test_a_group_that_a_module_took_as_a_default_is_still_ended_at_exit(tmp_path):
    # torch.distributed.nn.functional, imported once the group stands, keeps it in its functions' defaults;
    # destroyed but still referenced, the group kept gloo's threads up into the interpreter's finalisation,
    # where one that was releasing the last gather's tensors aborted the process (SIGABRT under load).
    done = run([sys.executable, "-c", CAPTURED, str(tmp_path / "store")])
    assert done.stdout.split() == ["True", "True", "True", "None"]
