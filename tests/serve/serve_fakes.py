"""Test doubles and generated media for the server tests (imported by ``conftest`` and the tests)."""

from __future__ import annotations

import threading

import numpy as np
import torch

from r1omni.models import Completions, PreparedBatch

TAUGHT_THINK = "The brows are lowered and the mouth is tight, but the voice is loud with a sharp tone."
TAUGHT_COMPLETION = f"<think>{TAUGHT_THINK}</think>\n<answer>angry</answer>"
TEACH_STEPS = 100


def frames(num_frames: int, seed: int) -> np.ndarray:
    """(T, 48, 64, 3) uint8 moving bars with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(64)[None, :, None]
    return np.stack([((np.sin((t + 3 * i) / 5.0) + 1) * 120 + rng.integers(0, 10, (48, 64, 3))).astype(np.uint8)
                     for i in range(num_frames)])


def tone(seconds: float, frequency_hz: float = 220.0) -> np.ndarray:
    samples = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * frequency_hz * samples)).astype(np.float32)


class StubPolicy:
    """A model that answers a fixed text, optionally holding every generate call until ``release`` is
    set (for queue and timeout tests), or failing."""

    family = "stub"
    tokenizer = None
    num_frames = 2

    def __init__(self, text: str = TAUGHT_COMPLETION, hold: bool = False, fail: bool = False) -> None:
        self.text = text
        self.fail = fail
        self.module = torch.nn.Linear(1, 1)
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.batch_sizes: list[int] = []

    def check_clip(self, clip):
        pass  # reads any clip

    def prepare(self, clips):
        n = len(clips)
        return PreparedBatch(torch.zeros((n, 1), dtype=torch.long), torch.ones((n, 1), dtype=torch.long))

    def generate(self, batch, num_return_sequences=1, sampling=None):
        self.batch_sizes.append(batch.num_clips)
        self.started.set()
        if not self.release.wait(timeout=30):
            raise RuntimeError("stub model was never released")
        if self.fail:
            raise RuntimeError("stub model failure")
        n = batch.num_clips
        return Completions(ids=torch.zeros((n, 1), dtype=torch.long), mask=torch.ones((n, 1), dtype=torch.long),
                           texts=[self.text] * n, clip_index=torch.arange(n))
