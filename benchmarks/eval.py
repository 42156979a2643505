"""Evaluation throughput: clips per second of ``r1omni.evaluate`` at batch size 1 vs the default 16.

Generates ``--clips`` clips of the embedded benchmark (test_id style: drawn faces, synthesised voices,
subtitles) in a temporary folder, builds a preset with random weights, and runs ``evaluate`` once per
batch size into a fresh folder (so nothing is resumed), after one untimed warm-up batch. Prints, per
batch size,

* clips/s of the generation loop (decode + pre-process + generate: the ``clips_per_second`` that
  ``evaluate`` writes to metrics.json),
* clips/s over the whole call (also scoring, confusion PNGs and the report),

and the ratio batched / one at a time. Random weights never produce the end-of-turn token, so every
clip generates exactly ``--max-new-tokens`` tokens at both batch sizes: the comparison is like for
like (real models stop early and unevenly, which favours small batches somewhat).

    python benchmarks/eval.py [--preset qwen2.5-omni-tiny] [--clips 32] [--max-new-tokens 32]
                              [--batch-sizes 1 16] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from r1omni.evaluate import EvalOptions, evaluate
from r1omni.models import init_preset
from r1omni.schema import read_samples
from r1omni.synth import generate_benchmark, get_preset


def make_clips(folder: Path, count: int) -> list:
    config = dataclasses.replace(get_preset("tiny"), split_sizes={"test_id": count})
    manifests = generate_benchmark(folder, preset=config, seed=0, splits=["test_id"], progress=False)
    return read_samples(manifests["test_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="qwen2.5-omni-tiny", help="model preset (random weights)")
    parser.add_argument("--clips", type=int, default=32, help="number of generated clips (default 32)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per clip (default 32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="batch sizes (default 1 16)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="r1omni-bench-eval-") as tmp:
        tmp = Path(tmp)
        tick = time.perf_counter()
        samples = make_clips(tmp / "synth", args.clips)
        print(f"{len(samples)} clips generated in {time.perf_counter() - tick:.1f} s")
        policy = init_preset(args.preset, seed=0)
        policy.module.to(args.device)
        print(f"preset {args.preset} ({sum(p.numel() for p in policy.module.parameters()) / 1e6:.2f} M parameters) "
              f"on {args.device}, {torch.get_num_threads()} CPU thread(s), {policy.num_frames} frames per clip, "
              f"{args.max_new_tokens} new tokens per clip")
        evaluate(policy, samples[:min(4, len(samples))], tmp / "warmup",
                 options=EvalOptions(batch_size=4, max_new_tokens=args.max_new_tokens))

        results = {}
        for batch_size in args.batch_sizes:
            options = EvalOptions(batch_size=batch_size, max_new_tokens=args.max_new_tokens)
            tick = time.perf_counter()
            metrics = evaluate(policy, samples, tmp / f"batch{batch_size}", options=options)
            wall = time.perf_counter() - tick
            results[batch_size] = (metrics["clips_per_second"], len(samples) / wall)
            print(f"batch {batch_size:3d}: {metrics['clips_per_second']:7.2f} clips/s generation loop, "
                  f"{len(samples) / wall:7.2f} clips/s whole call ({wall:.1f} s)")
        if len(args.batch_sizes) >= 2:
            first, last = args.batch_sizes[0], args.batch_sizes[-1]
            print(f"ratio batch {last} / batch {first}: {results[last][0] / results[first][0]:.2f}x generation loop, "
                  f"{results[last][1] / results[first][1]:.2f}x whole call")


if __name__ == "__main__":
    main()
