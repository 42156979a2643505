"""``r1omni.evaluate.evaluate`` of a saved model on a manifest, for ``test_evaluate_multiprocess.py`` to run
as one process and under ``accelerate launch`` with two CPU processes (gloo). Not a test itself (pytest
does not collect ``mp_*`` files). Each process records what it answered in ``OUTPUT_DIR/../answered-RANK.json``.

usage: python mp_eval_script.py MODEL_DIR MANIFEST OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from r1omni import evaluate as evaluation
from r1omni.labels import get_label_set
from r1omni.models import load_policy
from r1omni.models.placement import processes
from r1omni.schema import read_samples


def main(model_dir: str, manifest: str, output_dir: str) -> None:
    torch.set_num_threads(1)
    state = processes()
    policy = load_policy(model_dir, device="cpu")
    policy.module.eval()
    answered: list[str] = []
    answer_batch = evaluation._answer_batch

    def recording(policy, chunk, *args):
        answered.extend(sample.id for sample in chunk)
        return answer_batch(policy, chunk, *args)

    evaluation._answer_batch = recording
    evaluation.evaluate(policy, read_samples(manifest), output_dir, get_label_set("synth"),
                        evaluation.EvalOptions(batch_size=2, max_new_tokens=6))
    record = {"rank": state.process_index, "processes": state.num_processes, "answered": answered}
    (Path(output_dir).parent / f"answered-{state.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:4])
