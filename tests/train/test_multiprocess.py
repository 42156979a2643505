"""GRPO under ``accelerate launch`` with two CPU processes (DDP over gloo).

``mp_grpo_script.py`` trains the tiny preset for a few steps and has each process dump its final
parameters and what it rolled out. The test checks that data-parallel GRPO is what it claims:

* both processes end with identical parameters, equal to the saved final model, and different
  from the initial ones (the gradients were averaged, the weights moved);
* each process rolls out its own clips (the two never share a clip in a micro-batch, and they
  follow ``StepOrder``'s slices), and every group of G rows belongs to one clip, with the reward
  seeing that clip's label on each of its rows;
* the learning rate follows the schedule over optimiser steps (accelerate's default would step a
  prepared scheduler once per process per step, i.e. twice as fast here).

Launch note: ``accelerate launch --cpu --num_processes 2`` starts ONE process on a machine without
MPI (multi-CPU launching in accelerate goes through mpirun); two gloo processes are started with the
torchrun-based launcher (``--multi_gpu``) and ``ACCELERATE_USE_CPU=true``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1omni.models import init_preset, load_policy
from r1omni.schema import read_samples
from r1omni.train.data import StepOrder

SCRIPT = Path(__file__).with_name("mp_grpo_script.py")
STEPS, ACCUMULATION, CLIPS_PER_STEP, GENERATIONS, SEED, LR = 3, 2, 1, 4, 5, 1e-2   # as in the script
PROCESSES = 2
TIMEOUT_SECONDS = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tiny_dataset, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("multiprocess")
    output_dir, record_dir = folder / "run", folder / "records"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(PROCESSES),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(SCRIPT), str(tiny_dataset), str(output_dir),
               str(record_dir)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, done.stderr[-4000:]
    records = [json.loads((record_dir / f"record-{rank}.json").read_text()) for rank in range(PROCESSES)]
    params = [load_file(str(record_dir / f"params-{rank}.safetensors")) for rank in range(PROCESSES)]
    metrics = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return {"records": records, "params": params, "metrics": metrics, "final": output_dir / "final"}


def test_two_processes_really_ran_data_parallel(two_process_run):
    for rank, record in enumerate(two_process_run["records"]):
        assert record["rank"] == rank and record["num_processes"] == PROCESSES
        assert record["wrapped"] == "DistributedDataParallel"


def test_processes_end_with_identical_parameters(two_process_run):
    first, second = two_process_run["params"]
    assert first.keys() == second.keys() and len(first) > 50
    for name in first:
        assert torch.equal(first[name], second[name]), name
    saved = dict(load_policy(two_process_run["final"]).module.named_parameters())
    initial = dict(init_preset("qwen2.5-omni-tiny", seed=SEED).module.named_parameters())
    assert saved.keys() == first.keys()
    for name in first:
        assert torch.equal(saved[name].detach(), first[name]), name
    moved = [name for name in first if not torch.equal(initial[name].detach(), first[name])]
    assert any(name.startswith("thinker.model.language_model.") for name in moved)
    # Only the paper's GRPO parts train (LLM and projectors); the towers stay as initialised.
    towers = [name for name in first if name.startswith("thinker.model.visual.blocks.")]
    assert towers and not set(towers) & set(moved)


def test_each_process_rolls_out_its_own_clips_in_whole_groups(two_process_run, tiny_dataset):
    samples = read_samples(tiny_dataset)
    label_of = {sample.id: sample.label for sample in samples}
    order = StepOrder(len(samples), CLIPS_PER_STEP, PROCESSES, SEED)
    records = [record["micro_batches"] for record in two_process_run["records"]]
    assert all(len(micro) == STEPS * ACCUMULATION for micro in records)
    for micro_step in range(STEPS * ACCUMULATION):
        batches = [micro[micro_step] for micro in records]
        assert not set(batches[0]["clip_ids"]) & set(batches[1]["clip_ids"]), micro_step
        for rank, batch in enumerate(batches):
            expected = [samples[i].id for i in order.indices(micro_step, rank)]
            assert batch["clip_ids"] == expected
            # Group g = rows g*G .. g*G+G-1 all continue clip g; advantages are normalised per group.
            assert batch["clip_index"] == [clip for clip in range(CLIPS_PER_STEP) for _ in range(GENERATIONS)]
            assert batch["row_labels"] == [label_of[batch["clip_ids"][clip]] for clip in batch["clip_index"]]


def test_learning_rate_follows_the_optimiser_steps(two_process_run):
    metrics = two_process_run["metrics"]
    assert [row["step"] for row in metrics] == list(range(1, STEPS + 1))
    for row in metrics:   # linear decay without warm-up over STEPS optimiser steps
        assert row["lr"] == pytest.approx(LR * (1 - (row["step"] - 1) / STEPS)), row


def test_a_launch_that_did_not_form_a_group_is_refused(monkeypatch):
    # What two GPU-less processes see when launched without ACCELERATE_USE_CPU=true.
    from r1omni.train.setup import make_accelerator

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"launched as 2 processes .* ACCELERATE_USE_CPU=true"):
        make_accelerator()
