"""Shared set-up for the training tests: a tiny labelled dataset of generated clips (real mp4 files
written with ``write_clip``, so training reads them through the same decoding path as real data),
its manifest, and a saved tiny model folder.

Everything is session-scoped and small (4 frames of 56x56 at 4 fps, 1 s of audio), so decoding
and model building happen once per test session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r1omni.media import write_audio, write_clip
from r1omni.schema import Sample, read_samples, write_samples

PRESET = "qwen2.5-omni-tiny"
LABELS = ("happy", "sad", "angry", "neutral", "happy", "sad")
SAMPLE_RATE_HZ = 16000


def make_clip(path: Path, index: int) -> Path:
    """A 1 s, 56x56, 8 fps mp4 whose colour and tone pitch depend on ``index``."""
    rng = np.random.default_rng(index)
    base = rng.integers(30, 220, size=3)
    frames = np.stack([np.clip(base + 8 * t + rng.integers(0, 12, (56, 56, 3)), 0, 255).astype(np.uint8)
                       for t in range(8)])
    seconds = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    waveform = (0.3 * np.sin(2 * np.pi * (180 + 60 * index) * seconds)).astype(np.float32)
    return write_clip(path, frames, 8, waveform)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Manifest of six labelled clips with reasoning, a description, an instruction (question and answer)
    and a subtitle (relative paths)."""
    folder = tmp_path_factory.mktemp("tiny_dataset")
    samples = []
    for index, label in enumerate(LABELS):
        video = make_clip(folder / f"clip{index}.mp4", index)
        samples.append(Sample(id=f"clip{index}", corpus="toy", video=str(video), label=label, split="train",
                              subtitle=f"line number {index}",
                              reasoning=f"The person looks {label} and the voice sounds {label}.",
                              meta={"description": f"The mouth is tight and the voice is loud {index}.",
                                    "question": f"How loud is clip {index}?", "answer": "The voice is loud."}))
    manifest = folder / "train.jsonl"
    write_samples(manifest, samples, relative_to=folder)
    return manifest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved random ``qwen2.5-omni-tiny`` (seed 0), loadable with ``r1omni.models.load_policy``."""
    from r1omni.models import init_preset

    folder = tmp_path_factory.mktemp("tiny_model") / "model"
    init_preset(PRESET, seed=0).save(folder)
    return folder



@pytest.fixture(scope="session")
def short_audio_dataset(tiny_dataset, tmp_path_factory) -> Path:
    """Manifest of one clip of ``tiny_dataset`` and a labelled 10 ms wav, which decodes but is too short
    for one Qwen2.5-Omni audio token."""
    folder = tmp_path_factory.mktemp("short_audio")
    short = write_audio(folder / "short.wav", (0.3 * np.sin(np.arange(160) / 5)).astype(np.float32))
    first = read_samples(tiny_dataset)[0]
    samples = [first, Sample(id="short", corpus="toy", audio=str(short), label="sad", split="train",
                             reasoning="The voice sounds sad.", meta=dict(first.meta))]
    manifest = folder / "train.jsonl"
    write_samples(manifest, samples)
    return manifest
