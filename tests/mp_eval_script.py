"""``r1omni.evaluate.evaluate`` and ``r1omni.explain.attribution.attribute`` of a saved model on a manifest, for
``test_evaluate_multiprocess.py`` to run as one process and under ``accelerate launch`` with two CPU processes
(gloo). Not a test itself (pytest does not collect ``mp_*`` files). Each process records in the folder above
OUTPUT_DIR the clips it answered in evaluation (``answered-RANK.json``) and the attribution it returned
(``attribution-RANK.json``).

usage: python mp_eval_script.py MODEL_DIR MANIFEST OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from r1omni import evaluate as evaluation
from r1omni.clips import ClipLoader
from r1omni.explain.attribution import attribute
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
    samples, labels = read_samples(manifest), get_label_set("synth")
    evaluation.evaluate(policy, samples, output_dir, labels, evaluation.EvalOptions(batch_size=2, max_new_tokens=6))
    record = {"rank": state.process_index, "processes": state.num_processes, "answered": answered}
    (Path(output_dir).parent / f"answered-{state.process_index}.json").write_text(json.dumps(record))
    results, skipped = attribute(policy, samples, ClipLoader.for_policy(policy), labels, batch_size=2,
                                 max_new_tokens=4)
    attribution = {"results": [result.to_dict() for result in results], "skipped": skipped}
    (Path(output_dir).parent / f"attribution-{state.process_index}.json").write_text(json.dumps(attribution))


if __name__ == "__main__":
    main(*sys.argv[1:4])
