"""Server battery: peak memory per request for the two inputs that used to cost gigabytes, a bounded load
run, and schemathesis against ``/openapi.json``; prints server errors (expected 0), latency percentiles
and peak RSS.

Everything is made in a temporary folder: the tiny random-weight Qwen2.5-Omni preset (random weights
never stop early, so every answer is ``--max-new-tokens`` tokens: a fixed amount of work per request),
generated clips (mp4, mkv, m4a, wav, a 2x2 clip, a broken file, a clip cut in half), a 193 KB mp4 of two
8192 x 8192 frames and a 10-minute 16 kHz wav. ``r1omni serve`` (the command users run) listens on a
free port of 127.0.0.1 with a media root and an upload folder, and is stopped by its PID (SIGTERM, then
SIGKILL after 30 s); its log is shown if it fails.

* ``memory``: the server's resident set after a warm-up request (idle), then each big input alone; the
  peak is the kernel's high-water mark (``VmHWM``), reset before each request through
  ``/proc/PID/clear_refs`` (sampled every 20 ms where that is not allowed).
* ``load``: ``--clients`` threads share ``--requests`` requests: 60 % valid uploads (5 kinds), 20 %
  broken ones (422), 10 % JSON path requests (inside the root: 200; outside: 403), 5 % a wrong body type
  (415), 5 % short timelines (200). Counted: server errors (5xx), statuses other than the expected one,
  transport errors, latency p50 / p95 / max, peak RSS; ``/healthz`` is polled throughout.
* ``schemathesis``: the test extra's schemathesis run against the live document (every check, a bounded
  number of examples per operation); its summary is printed.

Exits 1 when any server error, unexpected status or schemathesis failure was seen, 2 when schemathesis
is missing (``pip install -e '.[test]'``).

    python benchmarks/server_battery.py [--parts memory load schemathesis] [--requests 400] [--clients 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import numpy as np

INSTALL_HINT = "pip install -e '.[test]'   (the test extra pins schemathesis)"
RATE_HZ = 16000
# A schema-valid upload need not be decodable media (the document cannot say "a clip FFmpeg reads"):
# 422 unreadable_media, and 413 for a clip or timeline over the limits, are right answers to one.
SCHEMATHESIS_CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "413", "422", "429", "5xx"]
"""


# -- inputs --------------------------------------------------------------------------------------------------
def _tone(seconds: float, frequency_hz: float = 220.0) -> np.ndarray:
    samples = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    voiced = (np.floor(samples * 2) % 2 == 0)        # half a second on, half a second off: syllables and pauses
    return (0.3 * np.sin(2 * np.pi * frequency_hz * samples) * voiced).astype(np.float32)


def _frames(count: int, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (count, height, width, 3), dtype=np.uint8)


def _bomb(path: Path, side: int = 8192) -> Path:
    """Two black side x side frames in a small mp4 (x264 at the lowest quality)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51"}
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((side, side, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_inputs(folder: Path) -> dict[str, Path]:
    from r1omni.media import write_audio, write_clip

    root = folder / "media_root"
    root.mkdir()
    files = {
        "ok.mp4": write_clip(root / "ok.mp4", _frames(24), 12, _tone(2.0)),
        "ok.mkv": write_clip(folder / "ok.mkv", _frames(16, seed=1), 8, _tone(2.0, 180)),
        "voice.m4a": write_audio(folder / "voice.m4a", _tone(1.5, 260)),
        "voice.wav": write_audio(folder / "voice.wav", _tone(1.0, 200)),
        "tiny_2x2.mp4": write_clip(folder / "tiny_2x2.mp4", _frames(8, 2, 2), 8),
    }
    (folder / "text.mp4").write_text("not a video\n" * 100)
    whole = files["ok.mkv"].read_bytes()
    (folder / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.wav").write_bytes(b"")
    (folder / "outside.mp4").write_bytes(files["ok.mp4"].read_bytes())
    files.update({"text.mp4": folder / "text.mp4", "cut.mkv": folder / "cut.mkv", "empty.wav": folder / "empty.wav",
                  "bomb_8192.mp4": _bomb(folder / "bomb_8192.mp4"),
                  "ten_minutes.wav": write_audio(folder / "ten_minutes.wav", _tone(600.0, 170))})
    return files


# -- the server ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``r1omni serve`` in a child process, stopped by its PID; its log goes to a file."""

    def __init__(self, model_dir: Path, media_root: Path, upload_dir: Path, log_path: Path, max_new_tokens: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "wb")
        command = [sys.executable, "-m", "r1omni.cli", "serve", "--model", str(model_dir), "--host", "127.0.0.1",
                   "--port", str(self.port), "--media-root", str(media_root), "--upload-dir", str(upload_dir),
                   "--label-set", "synth", "--max-new-tokens", str(max_new_tokens), "--threads", "1"]
        env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout_seconds: float = 180) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {timeout_seconds} s:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        return _status_kb(self.process.pid, "VmRSS") / 1024

    def reset_peak(self) -> bool:
        """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not allowed."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def peak_mb(self) -> float:
        return _status_kb(self.process.pid, "VmHWM") / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {key}")


class PeakSampler:
    """RSS sampled every 20 ms: the peak where the kernel's mark cannot be reset."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak_mb = server, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.server.rss_mb())
            time.sleep(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# -- memory per request ------------------------------------------------------------------------------------------
def _post_file(url: str, path: Path, route: str = "/v1/predict", timeout: float = 600) -> httpx.Response:
    with open(path, "rb") as handle:
        return httpx.post(f"{url}{route}", files={"file": (path.name, handle)}, timeout=timeout)


def measure_memory(server: Server, files: dict[str, Path]) -> bool:
    """Peak RSS of each big input alone against the idle server; True when every request was answered."""
    _post_file(server.url, files["ok.mp4"])                        # warm-up: lazy initialisations count as idle
    time.sleep(0.5)
    idle_mb = server.rss_mb()
    print(f"memory: idle RSS {idle_mb:.0f} MB (after one warm-up request)")
    ok = True
    for name in ("bomb_8192.mp4", "ten_minutes.wav"):
        exact = server.reset_peak()
        with PeakSampler(server) as sampler:
            started = time.perf_counter()
            response = _post_file(server.url, files[name])
            seconds = time.perf_counter() - started
        peak_mb = server.peak_mb() if exact else sampler.peak_mb
        ok &= response.status_code == 200
        print(f"memory: {name:16s} ({files[name].stat().st_size / 1e6:6.2f} MB) -> {response.status_code} in "
              f"{seconds:5.1f} s; peak RSS {peak_mb:.0f} MB = idle + {peak_mb - idle_mb:.0f} MB"
              f"{'' if exact else ' (sampled every 20 ms)'}")
        time.sleep(0.5)
    return ok


# -- load ------------------------------------------------------------------------------------------------------
@dataclass
class Planned:
    kind: str
    expected: int
    send: object = field(repr=False)


def plan_requests(files: dict[str, Path], count: int, seed: int = 0) -> list[Planned]:
    """``count`` requests in a fixed random order (see the module docstring for the mix)."""
    valid = [files[name] for name in ("ok.mp4", "ok.mkv", "voice.m4a", "voice.wav", "tiny_2x2.mp4")]
    broken = [files[name] for name in ("text.mp4", "cut.mkv", "empty.wav")]

    def upload(path: Path, route: str = "/v1/predict"):
        data = path.read_bytes()
        return lambda client: client.post(route, files={"file": (path.name, data)})

    kinds = [("valid upload", 200, upload(path)) for path in valid] * 12 \
        + [("broken upload", 422, upload(path)) for path in broken] * 8 \
        + [("path inside root", 200, lambda client: client.post("/v1/predict", json={"path": "ok.mp4"}))] * 6 \
        + [("path outside root", 403, lambda client: client.post("/v1/predict", json={"path": "../outside.mp4"}))] * 4 \
        + [("wrong body type", 415, lambda client: client.post("/v1/predict", content=b"x",
                                                               headers={"content-type": "text/plain"}))] * 5 \
        + [("short timeline", 200, upload(files["voice.wav"], "/v1/timeline?segment_seconds=0.5"))] * 5
    rng = random.Random(seed)
    return [Planned(*rng.choice(kinds)) for _ in range(count)]


def run_load(server: Server, files: dict[str, Path], requests: int, clients: int) -> bool:
    planned = plan_requests(files, requests)
    results: list[tuple[Planned, int | None, float]] = []
    health: list[int] = []
    stop = threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.wait(1.0):
                try:
                    health.append(client.get("/healthz").status_code)
                except httpx.TransportError:
                    health.append(0)

    def one(request: Planned, client: httpx.Client) -> tuple[Planned, int | None, float]:
        started = time.perf_counter()
        try:
            status = request.send(client).status_code
        except httpx.TransportError:
            status = None
        return request, status, time.perf_counter() - started

    prober = threading.Thread(target=poll_health, daemon=True)
    prober.start()
    local = threading.local()

    def worker(request: Planned):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=300)
        return one(request, local.client)

    started = time.perf_counter()
    with PeakSampler(server) as sampler, concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(worker, planned))
    wall = time.perf_counter() - started
    stop.set()
    prober.join()
    return _report_load(results, health, wall, clients, sampler.peak_mb, server.rss_mb())


def _report_load(results, health: list[int], wall: float, clients: int, peak_mb: float, last_mb: float) -> bool:
    latencies = np.array([seconds for _, _, seconds in results])
    server_errors = sum(status is not None and status >= 500 for _, status, _ in results)
    transport = sum(status is None for _, status, _ in results)
    unexpected = [(r.kind, status) for r, status, _ in results if status != r.expected]
    statuses: dict[int | None, int] = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"load: {len(results)} requests from {clients} clients in {wall:.1f} s ({len(results) / wall:.1f} req/s); "
          f"statuses {dict(sorted(statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))}")
    print(f"load: server errors (5xx) {server_errors}, unexpected statuses {len(unexpected)}, transport errors "
          f"{transport}; latency p50 {np.percentile(latencies, 50):.2f} s, p95 {np.percentile(latencies, 95):.2f} s, "
          f"max {latencies.max():.2f} s")
    print(f"load: healthz {sum(s == 200 for s in health)}/{len(health)} OK; server RSS peak {peak_mb:.0f} MB, "
          f"after {last_mb:.0f} MB")
    for kind, status in sorted(set(unexpected), key=str)[:10]:
        print(f"  unexpected: {kind} -> {status}")
    return server_errors == 0 and not unexpected and transport == 0


# -- schemathesis ------------------------------------------------------------------------------------------------
def run_schemathesis(server: Server, max_examples: int, seed: int, max_seconds: float) -> bool:
    """The schemathesis command line against the live document; True when it reports no failure. Its
    failures and summary are printed (the whole report, with reproductions, goes to the temporary folder)."""
    config = Path(tempfile.gettempdir()) / "r1omni-battery-schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    report = Path(tempfile.gettempdir()) / "r1omni-battery-schemathesis.txt"
    command = [sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(config), "run",
               f"{server.url}/openapi.json",
               "--checks", "all", "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1",
               "--request-timeout", "120", "--max-time", f"{max_seconds:g}"]
    print(f"schemathesis: {' '.join(command[2:])}", flush=True)
    # Run in the battery's folder: schemathesis keeps a .schemathesis/ cache in its working directory.
    done = subprocess.run(command, capture_output=True, text=True, timeout=max_seconds + 120, cwd=server.log_path.parent)
    report.write_text(done.stdout + done.stderr)
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "FAILURES" in line), None)
    shown = lines[start:start + 60] if start is not None else []
    shown += lines[next((i for i, line in enumerate(lines) if "SUMMARY" in line), len(lines)):]
    print("\n".join(f"  {line}" for line in shown if line.strip()))
    if done.returncode != 0:
        print(f"schemathesis: exit {done.returncode} (full report: {report})")
    return done.returncode == 0


# -- main ----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["memory", "load", "schemathesis"],
                        choices=["memory", "load", "schemathesis"])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--max-examples", type=int, default=25, help="schemathesis examples per operation")
    parser.add_argument("--max-seconds", type=float, default=60, help="schemathesis time budget")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if "schemathesis" in args.parts and importlib.util.find_spec("schemathesis") is None:
        print(f"server_battery: schemathesis is not installed; install the test extra: {INSTALL_HINT}\n"
              "(or leave it out: --parts memory load)", file=sys.stderr)
        return 2
    from r1omni.models import init_preset

    folder = Path(tempfile.mkdtemp(prefix="r1omni-battery-"))
    server = None
    try:
        files = make_inputs(folder)
        init_preset("qwen2.5-omni-tiny", seed=0).save(folder / "model")
        (folder / "uploads").mkdir()
        server = Server(folder / "model", folder / "media_root", folder / "uploads", folder / "server.log",
                        args.max_new_tokens)
        server.wait_ready()
        passed = True
        if "memory" in args.parts:
            passed &= measure_memory(server, files)
        if "load" in args.parts:
            passed &= run_load(server, files, args.requests, args.clients)
        if "schemathesis" in args.parts:
            passed &= run_schemathesis(server, args.max_examples, args.seed, args.max_seconds)
        left = sorted(p.name for p in (folder / "uploads").iterdir())
        tracebacks = server.log_text().count("Traceback")
        print(f"uploads left on disk: {len(left)}; tracebacks in the server log: {tracebacks}")
        return 0 if passed and not left and not tracebacks else 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
