"""Shared test set-up: one torch thread (tiny matmuls are ~100x slower with two on 2 cores),
paths to the parity fixture, small generated clips, and RAVDESS-like folders to import."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
# A copy of shared/fixtures/humanomni-tiny (official outputs on tiny random weights), kept in the
# repository so that CI in a fresh clone runs the parity test.
FIXTURE_DIR = REPO / "tests" / "fixtures" / "humanomni-tiny"


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """The official HumanOmni parity fixture (read-only)."""
    if not FIXTURE_DIR.is_dir():
        pytest.skip(f"parity fixture not found at {FIXTURE_DIR}")
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def av_clip(tmp_path_factory) -> Path:
    """A 2 s 64x48 24 fps mp4 with a 16 kHz AAC track: moving bars and a tone."""
    from r1omni.media import write_clip

    rng = np.random.default_rng(0)
    t = np.arange(64)[None, :, None]
    frames = np.stack([((np.sin((t + 3 * i) / 5.0) + 1) * 120 + rng.integers(0, 10, (48, 64, 3)))
                       .astype(np.uint8) for i in range(48)])
    waveform = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames, 24, waveform)


@pytest.fixture(scope="session")
def silent_clip(tmp_path_factory) -> Path:
    """A 1 s mp4 with no audio stream (as 21 MAFW clips are)."""
    from r1omni.media import write_clip

    frames = np.full((24, 48, 64, 3), 100, np.uint8)
    return write_clip(tmp_path_factory.mktemp("clips") / "silent.mp4", frames, 24)


@pytest.fixture
def ravdess_folder():
    """``make(root, names)``: a RAVDESS-like corpus folder (``root/Actor_01/NAME``, one byte each) for the
    importer to read; the names decide what it keeps (RAVDESS's numbered names) and skips."""
    def make(root: Path, names: list[str]) -> Path:
        (root / "Actor_01").mkdir(parents=True)
        for name in names:
            (root / "Actor_01" / name).write_bytes(b"x")
        return root
    return make
