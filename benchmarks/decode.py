"""Decode throughput: ``sample_frames`` (seeks to the sampled frames) vs decoding every frame.

Generates its own clips (720p, 25 fps, H.264 + AAC mp4: a zooming noisy texture and a moving blob) in a
temporary folder, then measures clips per second of

* sampled: ``r1omni.media.sample_frames(path, num_frames)``, RGB for the sampled frames only;
* full:    a sequential decode of every frame of the same clip, each converted to RGB,

and prints both figures and their ratio. The sampled frames are checked against the full decode.
Each figure is the best of ``--repeats`` passes over all clips (files are in the page cache).
The decoder runs with PyAV's default threading in both cases.

The gain depends on the GOP length: with the encoder's default (x264: a keyframe every 250 frames,
so one keyframe per short clip, as in most re-encoded emotion corpora) seeking cannot skip
decoding, and the gain comes from stopping after the last sampled frame and converting only the
sampled frames to RGB; with ``--keyframe-interval 12`` (broadcast-style GOPs) whole GOPs are skipped.

    python benchmarks/decode.py [--clips 6] [--num-frames 8] [--seconds 3] [--keyframe-interval N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from r1omni.media import sample_frames, write_clip

WIDTH, HEIGHT, FPS, SAMPLE_RATE_HZ = 1280, 720, 25, 16000


def make_clip(path: Path, seconds: float, seed: int, keyframe_interval: int | None) -> Path:
    """A noisy striped texture that slowly zooms (which motion compensation predicts only in part,
    so inter frames carry real residual) with a bright blob moving across it."""
    rng = np.random.default_rng(seed)
    num_frames = round(seconds * FPS)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)
    channel = np.arange(3, dtype=np.float32)
    stripes = 90 + 60 * np.sin(25 * x[None, :, None] + 17 * y[:, None, None] * (channel + 1) + seed)
    texture = np.clip(stripes + rng.normal(0, 6, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.int16)  # (H, W, 3)
    blob_y = np.exp(-((y - 0.5) ** 2) / 0.01)                                            # (H,)
    frames = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)                         # (T, H, W, 3)
    for t in range(num_frames):
        scale = 1 - 0.002 * t  # zoom in around the centre
        rows = ((np.arange(HEIGHT) - HEIGHT / 2) * scale + HEIGHT / 2).astype(np.int64)
        cols = ((np.arange(WIDTH) - WIDTH / 2) * scale + WIDTH / 2).astype(np.int64)
        centre_x = 0.2 + 0.6 * t / max(num_frames - 1, 1)
        blob = (100 * np.outer(blob_y, np.exp(-((x - centre_x) ** 2) / 0.01))).astype(np.int16)  # (H, W)
        frames[t] = np.clip(texture[rows][:, cols] + blob[:, :, None], 0, 255)
    samples = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    waveform = (0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * samples)).astype(np.float32)
    return write_clip(path, frames, FPS, waveform, SAMPLE_RATE_HZ, keyframe_interval=keyframe_interval)


def decode_everything(path: Path, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """Every frame decoded and converted to RGB; the wanted ones kept for the check."""
    kept: dict[int, np.ndarray] = {}
    wanted_set = set(wanted.tolist())
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            if index in wanted_set:
                kept[index] = rgb
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=6, help="number of generated clips (default 6)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per clip (default 8)")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length in seconds (default 3)")
    parser.add_argument("--keyframe-interval", type=int, default=None,
                        help="GOP length in frames (default: the encoder's, 250 for x264)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="r1omni-decode-bench-") as folder:
        started = time.perf_counter()
        clips = [make_clip(Path(folder) / f"clip{i}.mp4", args.seconds, i, args.keyframe_interval)
                 for i in range(args.clips)]
        size_mib = sum(p.stat().st_size for p in clips) / 2**20
        print(f"{args.clips} clips of {WIDTH}x{HEIGHT}, {args.seconds:g} s at {FPS} fps with audio "
              f"({size_mib:.1f} MiB, keyframe interval {args.keyframe_interval or 'encoder default'}), "
              f"made in {time.perf_counter() - started:.1f} s; sampling {args.num_frames} frames")

        sampled_seconds = full_seconds = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            results = [sample_frames(path, args.num_frames) for path in clips]
            sampled_seconds = min(sampled_seconds, time.perf_counter() - started)
            started = time.perf_counter()
            full = [decode_everything(path, result.indices) for path, result in zip(clips, results)]
            full_seconds = min(full_seconds, time.perf_counter() - started)

        for result, kept in zip(results, full):
            reference = np.stack([kept[int(i)] for i in result.indices])
            if not np.array_equal(result.frames, reference):
                raise SystemExit("sampled frames differ from the full decode")
        modes = sorted({r.decode_mode for r in results})
        decoded = sum(r.num_decoded_frames for r in results)
        total = sum(r.num_stream_frames for r in results)
        print(f"decode mode {'/'.join(modes)}; frames out of the decoder {decoded} of {total} "
              "(non-reference frames skipped); sampled frames identical to the full decode")
        sampled_rate = len(clips) / sampled_seconds
        full_rate = len(clips) / full_seconds
        print(f"sampled: {sampled_rate:.2f} clips/s  full: {full_rate:.2f} clips/s  "
              f"ratio {sampled_rate / full_rate:.1f}x")


if __name__ == "__main__":
    main()
