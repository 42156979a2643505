"""A few GRPO steps on the tiny preset, for ``test_multiprocess.py`` to run under ``accelerate launch``
with two CPU processes (gloo). Not a test itself (pytest does not collect ``mp_*`` files).

usage: python mp_grpo_script.py MANIFEST OUTPUT_DIR RECORD_DIR

Each process writes into RECORD_DIR:

* ``params-RANK.safetensors``: its unwrapped model's parameters after the last step;
* ``record-RANK.json``: per micro-batch (in order), the ids of the clips it rolled out, the
  ``clip_index`` of every completion row, and the labels its reward function received per row.

It observes ``train_grpo`` through its seams: the policy it trains is opened here and passed as
``policy=`` (its ``generate`` wrapped to record what it returns), the loader as ``loader=`` (recording
which samples are loaded), and the toy reward records its label column. Nothing in r1omni is changed
for the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from safetensors.torch import save_file

from r1omni.clips import ClipLoader
from r1omni.models import SamplingConfig
from r1omni.train import grpo
from r1omni.train.setup import OptimConfig, open_policy

STEPS, ACCUMULATION, CLIPS_PER_STEP, GENERATIONS, SEED, LR = 3, 2, 1, 4, 5, 1e-2

loaded_ids: list[str] = []          # sample ids loaded since the last rollout
micro_batches: list[dict] = []      # one entry per rollout (micro-batch)


class RecordingLoader(ClipLoader):
    def load_many(self, samples):
        loaded_ids.extend(sample.id for sample in samples)
        return super().load_many(samples)


def recording_policy(model: str, seed: int):
    policy = open_policy(model, seed=seed)
    generate = policy.generate

    def recording_generate(batch, num_return_sequences=1, sampling=None):
        completions = generate(batch, num_return_sequences=num_return_sequences, sampling=sampling)
        micro_batches.append({"clip_ids": list(loaded_ids), "clip_index": completions.clip_index.tolist()})
        loaded_ids.clear()
        return completions

    policy.generate = recording_generate
    return policy


def letter_e(completions, label, **columns) -> list[float]:
    micro_batches[-1]["row_labels"] = list(label)
    return [text.count("e") / max(len(text), 1) for text in completions]


def main(manifest: str, output_dir: str, record_dir: str) -> None:
    torch.set_num_threads(1)
    config = grpo.GRPOConfig(
        model="preset:qwen2.5-omni-tiny", data=manifest, output_dir=output_dir, max_steps=STEPS,
        num_generations=GENERATIONS, clips_per_step=CLIPS_PER_STEP, gradient_accumulation_steps=ACCUMULATION,
        beta=0.04, seed=SEED, rewards={"letter_e": 1.0}, sampling=SamplingConfig(max_new_tokens=8, do_sample=True),
        optim=OptimConfig(lr=LR, schedule="linear", warmup_ratio=0.0), num_threads=1)
    policy = recording_policy(config.model, config.seed)
    loader = RecordingLoader.for_policy(policy, prompt=config.prompt, use_subtitle=config.use_subtitle)
    grpo.train_grpo(config, reward_functions={"letter_e": letter_e}, policy=policy, loader=loader)

    rank = PartialState().process_index
    module = policy.module
    bare = module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
    record = Path(record_dir)
    record.mkdir(parents=True, exist_ok=True)
    params = {name: param.detach().cpu().contiguous() for name, param in bare.named_parameters()}
    save_file(params, str(record / f"params-{rank}.safetensors"))
    (record / f"record-{rank}.json").write_text(json.dumps({
        "rank": rank, "num_processes": PartialState().num_processes, "wrapped": type(module).__name__,
        "micro_batches": micro_batches}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
