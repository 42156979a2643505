"""Server load: requests per second and latency of ``POST /v1/predict`` at 1, 4 and 16 concurrent clients.

Saves the tiny random-weight Qwen2.5-Omni preset (``qwen2.5-omni-tiny``; random weights never emit the
end-of-turn token, so every answer is exactly ``--max-new-tokens`` tokens: a fixed amount of work per
request) and a generated 2 s clip (H.264 + AAC) in a temporary folder, starts ``r1omni.serve.run`` on a
free loopback port in a separate process (so that the load generator does not share its interpreter),
and for each concurrency level sends ``--requests`` uploads per client, each client one request at a
time. Reported per level: requests, failures (any non-200), requests per second over the level's wall
time, p50 / p95 latency, and the mean number of clips per generate call (from ``/healthz``).

With ``--compare-unbatched`` the highest level runs again against a server with ``max_batch_size=1``,
which shows what batching buys. Exits 1 if any request failed.

    python benchmarks/serve.py [--requests 8] [--concurrency 1 4 16] [--max-new-tokens 32] [--compare-unbatched]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

SERVER = """
import sys
from r1omni.serve import run
run(sys.argv[1], port=int(sys.argv[2]), label_set="synth", max_new_tokens=int(sys.argv[3]),
    max_batch_size=int(sys.argv[4]), max_queue=256)
"""


def make_clip(path: Path) -> Path:
    from r1omni.media import write_clip

    rng = np.random.default_rng(0)
    t = np.arange(128)[None, :, None]
    frames = np.stack([((np.sin((t + 3 * i) / 9.0) + 1) * 110 + rng.integers(0, 20, (96, 128, 3))).astype(np.uint8)
                       for i in range(50)])                                               # (T, H, W, 3)
    samples = np.arange(32000) / 16000
    waveform = (0.3 * np.sin(2 * np.pi * 220 * samples)).astype(np.float32)
    return write_clip(path, frames, 25, waveform)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``r1omni.serve.run`` in a child process; its log goes to a file, shown if it fails."""

    def __init__(self, model_dir: Path, max_new_tokens: int, max_batch_size: int, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), TOKENIZERS_PARALLELISM="false")
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(model_dir), str(self.port), str(max_new_tokens), str(max_batch_size)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout_seconds: float = 120) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout_seconds} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def load(url: str, clip: bytes, clients: int, requests_per_client: int) -> dict:
    """``clients`` concurrent clients, each sending ``requests_per_client`` uploads one after another."""
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        before = (await client.get("/healthz")).json()

        async def one_client(index: int) -> None:
            for request in range(requests_per_client):
                tick = time.perf_counter()
                response = await client.post("/v1/predict", files={"file": (f"c{index}-{request}.mp4", clip)})
                latencies.append(time.perf_counter() - tick)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

        tick = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        wall_seconds = time.perf_counter() - tick
        after = (await client.get("/healthz")).json()
    batches = after["batches_run"] - before["batches_run"]
    clips = after["clips_answered"] - before["clips_answered"]
    return {"clients": clients, "requests": len(latencies), "failures": failures,
            "requests_per_second": len(latencies) / wall_seconds,
            "p50_seconds": float(np.percentile(latencies, 50)), "p95_seconds": float(np.percentile(latencies, 95)),
            "mean_batch": clips / batches if batches else 0.0}


def run_levels(server: Server, clip: bytes, levels: list[int], requests_per_client: int, label: str) -> list[dict]:
    rows = []
    asyncio.run(load(server.url, clip, 1, 2))  # warm-up: first-call allocations, page cache
    for clients in levels:
        row = asyncio.run(load(server.url, clip, clients, requests_per_client))
        row["server"] = label
        rows.append(row)
        print(f"{label:<10} {row['clients']:>7} {row['requests']:>8} {len(row['failures']):>8} "
              f"{row['requests_per_second']:>8.2f} {row['p50_seconds'] * 1000:>8.0f} {row['p95_seconds'] * 1000:>8.0f} "
              f"{row['mean_batch']:>10.2f}", flush=True)
        for failure in row["failures"][:3]:
            print(f"    failure: {failure}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8, help="requests per client at each level (default 8)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="levels (default 1 4 16)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per answer (default 32)")
    parser.add_argument("--max-batch-size", type=int, default=8, help="server batch limit (default 8)")
    parser.add_argument("--compare-unbatched", action="store_true",
                        help="also run the highest level against a server with max_batch_size=1")
    args = parser.parse_args()

    from r1omni.models import init_preset

    with tempfile.TemporaryDirectory(prefix="r1omni-serve-bench-") as tmp:
        folder = Path(tmp)
        model_dir = folder / "qwen2.5-omni-tiny"
        init_preset("qwen2.5-omni-tiny", seed=0).save(model_dir)
        clip = make_clip(folder / "clip.mp4").read_bytes()
        print(f"model: qwen2.5-omni-tiny (random weights), {args.max_new_tokens} new tokens per answer; "
              f"clip: 2 s 128x96 mp4 + AAC, {len(clip)} bytes; {args.requests} requests per client; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
        print(f"{'server':<10} {'clients':>7} {'requests':>8} {'failures':>8} {'req/s':>8} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'clips/call':>10}")
        configs = [(f"batch<={args.max_batch_size}", args.max_batch_size, args.concurrency)]
        if args.compare_unbatched:
            configs.append(("batch=1", 1, [max(args.concurrency)]))
        rows = []
        for index, (label, max_batch_size, levels) in enumerate(configs):
            server = Server(model_dir, args.max_new_tokens, max_batch_size, folder / f"server{index}.log")
            try:
                server.wait_ready()
                rows += run_levels(server, clip, levels, args.requests, label)
            finally:
                server.stop()
    failed = sum(len(row["failures"]) for row in rows)
    print(f"failures: {failed} of {sum(row['requests'] for row in rows)} requests")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
