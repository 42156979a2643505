"""Does cropping to the face help when the face is small in the frame? Measured on the generated benchmark.

Three versions of the same in-distribution test clips (same seed, labels, cues, identities) are
generated: faces filling the frame as the demo trains on them, and faces drawn at
``--fraction`` of a larger frame, off-centre; a trained model (``--model``, e.g. a demo run's
``runs/label_sft/final``) is evaluated on the normal clips, on the small-face clips as they are,
and on the small-face clips with ``face_crop`` (OpenCV's Haar detector; a clip where no face is found
is used whole and counted). Printed: WAR overall and on the clips whose label only the face
carries, and how often a face was found.

    python benchmarks/face_crop.py --model demo_out/runs/label_sft/final [--clips 140] [--fraction 0.4]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from r1omni.evaluate import EvalOptions, evaluate  # noqa: E402
from r1omni.labels import get_label_set  # noqa: E402
from r1omni.metrics import PREDICTIONS  # noqa: E402
from r1omni.models import load_policy  # noqa: E402
from r1omni.schema import read_samples  # noqa: E402
from r1omni.synth import SynthConfig, generate_benchmark  # noqa: E402


def face_only_war(folder: Path, samples) -> tuple[float, int]:
    carrier = {s.id: s.meta["carrier"] for s in samples}
    rows = [json.loads(line) for line in (folder / PREDICTIONS).read_text().splitlines() if line]
    face = [r for r in rows if carrier[r["id"]] == "face"]
    return sum(r["pred"] == r["label"] for r in face) / max(len(face), 1), len(face)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained demo model folder")
    parser.add_argument("--clips", type=int, default=140)
    parser.add_argument("--fraction", type=float, default=0.4, help="face side as a share of the frame")
    parser.add_argument("--frame", type=int, default=128, help="frame side of the small-face clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_policy(args.model)
    policy.module.eval()
    labels = get_label_set("synth")
    base = SynthConfig(split_sizes={"test_id": args.clips})
    small = replace(base, id_style=replace(base.id_style, frame_size_px=args.frame, face_fraction=args.fraction))
    with tempfile.TemporaryDirectory(prefix="face-crop-") as tmp:
        work = Path(tmp)
        runs = {}
        for name, config, crop in (("faces fill the frame", base, False), ("small faces, whole frame", small, False),
                                   ("small faces, face crop", small, True)):
            folder = work / ("small" if config is small else "normal")
            samples = read_samples(generate_benchmark(folder, config, seed=args.seed, progress=False)["test_id"])
            out = work / name.replace(" ", "_").replace(",", "")
            metrics = evaluate(policy, samples, out, labels, EvalOptions(prompt="train", batch_size=32,
                                                                      max_new_tokens=100, face_crop=crop))
            runs[name] = (metrics, *face_only_war(out, samples))
        for name, (metrics, face_war, face_clips) in runs.items():
            found = ""
            if "face_crop" in metrics:
                crop = metrics["face_crop"]
                found = f"; a face was found in {crop['clips'] - crop['no_face']} of {crop['clips']} clips"
            print(f"{name:26s} WAR {metrics['normalized']['war']:.3f}  face-only clips WAR {face_war:.3f} "
                  f"(n = {face_clips}){found}")
        whole, cropped = runs["small faces, whole frame"][0], runs["small faces, face crop"][0]
        gain = cropped["normalized"]["war"] - whole["normalized"]["war"]
        print(f"face crop - whole frame on small faces: {gain:+.3f} WAR")


if __name__ == "__main__":
    main()
