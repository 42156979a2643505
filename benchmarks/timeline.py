"""Peak memory of ``r1omni predict --segment`` on a 1-minute and a 10-minute recording: the timeline decodes
window by window, so memory should follow the batch, not the length of the file.

Each recording (320x240 at 25 fps, H.264 + AAC, a moving pattern and a tone that changes every few
seconds) is written frame by frame; each run is a fresh child process whose own peak resident
memory (``ru_maxrss``) and wall time are printed, then the 10-minute / 1-minute ratio of both. The
model is the tiny random preset (``qwen2.5-omni-tiny``): the figures are about decoding and
batching, not about the model.

    python benchmarks/timeline.py [--minutes 1 10] [--window 4] [--batch-size 4]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

WIDTH, HEIGHT, FPS, RATE = 320, 240, 25, 16000


def write_recording(path: Path, seconds: int) -> Path:
    """A ``seconds``-long mp4 written one frame and one audio block at a time (never held whole)."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(FPS))
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "28"}
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        x = np.arange(WIDTH)[None, :]
        y = np.arange(HEIGHT)[:, None]
        samples_per_frame = RATE // FPS
        chunk = audio.codec_context.frame_size or 1024
        pending = np.zeros(0, np.float32)
        written = 0
        for index in range(seconds * FPS):
            level = (np.sin((x + 2 * index) / 17.0) + np.cos((y - index) / 23.0)) * 60 + 120
            rgb = np.repeat(level[..., None], 3, axis=2).astype(np.uint8)
            rgb[..., index // (FPS * 5) % 3] //= 2   # the colour changes every five seconds
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
            t = (index * samples_per_frame + np.arange(samples_per_frame)) / RATE
            pitch = 180 + 60 * (int(t[0]) // 3 % 4)   # the tone changes every three seconds
            pending = np.concatenate([pending, (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)])
            while len(pending) >= chunk:
                aframe = av.AudioFrame.from_ndarray(pending[None, :chunk].copy(), format="flt", layout="mono")
                aframe.sample_rate, aframe.pts = RATE, written
                written += chunk
                pending = pending[chunk:]
                for packet in audio.encode(aframe):
                    container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def child(model: str, clip: str, window: float, batch_size: int, out: str) -> None:
    """Run the command in this process and print its peak memory."""
    from r1omni.cli import main

    tick = time.perf_counter()
    code = main(["predict", "--model", model, clip, "--segment", str(window), "--batch-size", str(batch_size),
                 "-o", out, "--max-new-tokens", "16", "--threads", "1"])
    seconds = time.perf_counter() - tick
    print(json.dumps({"code": code, "seconds": seconds,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "CLIP", "OUT", "_"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, clip, out, _ = args.child
        child(model, clip, args.window, args.batch_size, out)
        return
    from r1omni.models import init_preset

    with tempfile.TemporaryDirectory(prefix="timeline-bench-") as tmp:
        work = Path(tmp)
        init_preset("qwen2.5-omni-tiny", seed=0).save(work / "model")
        figures = {}
        for minutes in args.minutes:
            clip = write_recording(work / f"rec{minutes}.mp4", minutes * 60)
            done = subprocess.run([sys.executable, __file__, "--window", str(args.window), "--batch-size",
                                   str(args.batch_size), "--child", str(work / "model"), str(clip),
                                   str(work / f"out{minutes}"), "-"], capture_output=True, text=True, check=True)
            figures[minutes] = json.loads(done.stdout.strip().splitlines()[-1])
            windows = len((work / f"out{minutes}" / clip.stem / "windows.jsonl").read_text().splitlines())
            print(f"{minutes:3d} min ({clip.stat().st_size / 2**20:6.1f} MiB file, {windows} windows of "
                  f"{args.window:g} s): peak RSS {figures[minutes]['peak_rss_mib']:7.1f} MiB, "
                  f"{figures[minutes]['seconds']:6.1f} s")
        first, last = min(figures), max(figures)
        if first != last:
            memory = figures[last]["peak_rss_mib"] / figures[first]["peak_rss_mib"]
            print(f"{last} min / {first} min: peak memory x{memory:.2f}, "
                  f"time x{figures[last]['seconds'] / figures[first]['seconds']:.1f} (length x{last / first:g})")


if __name__ == "__main__":
    main()
