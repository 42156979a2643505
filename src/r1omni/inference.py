"""Run a policy on media files: decode, prepare, generate, parse — batched, one record per file.

Used by ``r1omni predict`` and the server. A file that cannot be read yields a record with its
``error`` set while the other files of the batch go on. Each record carries the time spent per
stage (decode, pre-process, generate) for its batch, divided evenly among the batch's clips.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from r1omni.clips import ClipLoader
from r1omni.media import MediaError
from r1omni.models import Policy, SamplingConfig
from r1omni.schema import Sample
from r1omni.template import parse_completion

__all__ = ["Prediction", "predict_files", "AUDIO_SUFFIXES", "sample_for_path"]

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac")


@dataclass
class Prediction:
    path: str
    think: str | None = None
    answer: str | None = None
    label: str | None = None
    format_ok: bool = False
    output: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def sample_for_path(path: str | Path) -> Sample:
    """A bare sample for a file: audio files feed the audio path, anything else the video path."""
    path = str(path)
    if Path(path).suffix.lower() in AUDIO_SUFFIXES:
        return Sample(id=path, corpus="files", audio=path)
    return Sample(id=path, corpus="files", video=path)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict_files(policy: Policy, paths: Iterable[str | Path], modalities: str = "video_audio",
                  prompt: str = "inference", batch_size: int = 4,
                  sampling: SamplingConfig | None = None) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per path, in order."""
    sampling = sampling or SamplingConfig(max_new_tokens=512)
    loader = ClipLoader(num_frames=policy.num_frames, prompt=prompt, modalities=modalities)
    for chunk in _batches([str(p) for p in paths], batch_size):
        tick = time.perf_counter()
        clips, ok_paths, failed = [], [], {}
        for path in chunk:
            try:
                clips.append(loader.load(sample_for_path(path)))
                ok_paths.append(path)
            except MediaError as err:
                failed[path] = str(err)
        decode_seconds = time.perf_counter() - tick
        outputs: dict[str, Prediction] = {}
        if clips:
            tick = time.perf_counter()
            batch = policy.prepare(clips)
            prepare_seconds = time.perf_counter() - tick
            tick = time.perf_counter()
            completions = policy.generate(batch, num_return_sequences=1, sampling=sampling)
            generate_seconds = time.perf_counter() - tick
            share = len(chunk)
            timings = {"decode_seconds": decode_seconds / share, "preprocess_seconds": prepare_seconds / len(clips),
                       "generate_seconds": generate_seconds / len(clips)}
            for path, text in zip(ok_paths, completions.texts):
                parsed = parse_completion(text)
                outputs[path] = Prediction(path=path, think=parsed.think, answer=parsed.answer, label=parsed.label,
                                           format_ok=parsed.format_ok, output=text, timings=dict(timings))
        for path in chunk:
            yield outputs.get(path) or Prediction(path=path, error=failed[path],
                                                  timings={"decode_seconds": decode_seconds / len(chunk)})
