"""Generate the benchmark on disk: clips as real media files and one manifest per split.

Layout of ``out_dir``::

    pretrain.jsonl  cold_start.jsonl  train.jsonl  val_id.jsonl  val_ood.jsonl
    test_id.jsonl  test_ood.jsonl  test_mix.jsonl       (schema manifests, one per split)
    synth_config.json                 the config and seed of the last generation
    clips/<split>/<split>-00000.mp4   one file per clip (OOD splits: .webm), H.264+AAC / VP9+Opus
    clips/<split>/.fingerprint        what the split is being built from (config, seed, version)
    clips/<split>/COMPLETE            written after the manifest: the split is finished

Media paths in manifests are relative to ``out_dir``, so the folder can be moved. Every sample has
the label, the subtitle and ``meta`` (carrier, cue values, description, identity, speaker ...);
cold_start samples also have ``reasoning``, pretrain samples an instruction (``meta["task"]``,
``meta["question"]``, ``meta["answer"]``).

The files are the same, byte for byte, on every machine, in any number of processes
(:mod:`r1omni.media.encode` says how); :func:`file_hashes` and :func:`benchmark_digest` are how two
machines check that they hold the same benchmark.

Idempotent: a split whose manifest and COMPLETE marker match the current fingerprint is left alone.
An unfinished split with the same fingerprint is resumed (clips are written atomically, so a file
that exists is whole); one with another fingerprint is cleared and rebuilt. Manifests are written
atomically, last. This module only orchestrates; drawing and synthesis live beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from r1omni.atomic import COMPLETE_MARKER, atomic_write_text
from r1omni.media import write_clip
from r1omni.schema import Sample, write_samples
from r1omni.synth.config import SPLITS, StyleConfig, SynthConfig, get_preset
from r1omni.synth.face import BACKGROUND_HUES, render_face, tint
from r1omni.synth.spec import FACE_STREAM, VOICE_STREAM, ClipSpec, clip_rng, sample_clip_spec
from r1omni.synth.voice import synthesize_voice

__all__ = ["generate_benchmark", "render_clip", "write_split", "clip_path", "split_fingerprint",
           "file_hashes", "benchmark_digest", "GENERATOR_VERSION"]

logger = logging.getLogger(__name__)

# Bump when a change to the generator changes its output, so that old splits are rebuilt.
GENERATOR_VERSION = 7
_FINGERPRINT_FILE = ".fingerprint"
_MIN_JOBS_PER_PROCESS_POOL = 100


def clip_path(out_dir: str | os.PathLike, split: str, index: int, style: StyleConfig) -> Path:
    return Path(out_dir) / "clips" / split / f"{split}-{index:05d}{style.container}"


def _style_settings(style: StyleConfig) -> dict:
    """The style's fields, less those added since version 4 that are at their defaults (a benchmark made
    before them is still what they describe, so it is not rebuilt)."""
    settings = asdict(style)
    if settings["face_fraction"] == 1.0:
        del settings["face_fraction"]
    return settings


def split_fingerprint(config: SynthConfig, split: str, seed: int) -> str:
    """A digest of everything that decides a split's content."""
    settings = config.to_dict()
    for key in ("split_sizes", "id_style", "ood_style"):
        settings.pop(key)
    settings.update(version=GENERATOR_VERSION, seed=seed, split=split, size=config.split_sizes.get(split, 0),
                    styles=[_style_settings(style) for style in config.styles_of(split)])
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def render_clip(spec: ClipSpec, style: StyleConfig, apex_fraction: float):
    """(frames (T, H, W, 3) uint8, waveform (S,) float32) of one clip."""
    face_rng = clip_rng(spec.seed, spec.split, spec.index, FACE_STREAM)
    face_px = 2 * round(style.frame_size_px * style.face_fraction / 2)   # even, as yuv420p needs
    hue = None if spec.background is None else BACKGROUND_HUES[spec.background]
    frames = render_face(spec.cues["face"], spec.identity_params, face_rng, frame_size_px=face_px,
                         num_frames=style.num_frames, face_style=style.face_style, apex_fraction=apex_fraction,
                         pose_variation=style.pose_variation, background_hue=hue)
    if face_px < style.frame_size_px:
        frames = _place_small(frames, style.frame_size_px, face_rng, hue)
    waveform = synthesize_voice(spec.cues["voice"], spec.speaker_params,
                                clip_rng(spec.seed, spec.split, spec.index, VOICE_STREAM),
                                duration_seconds=style.duration_seconds, sample_rate_hz=style.sample_rate_hz,
                                voice_style=style.voice_style)
    return frames, waveform


def _place_small(faces: np.ndarray, frame_size_px: int, rng: np.random.Generator,
                 hue: tuple[int, int, int] | None = None) -> np.ndarray:
    """The face frames (T, F, F, 3) pasted into larger frames (T, S, S, 3): right half, height drawn per clip,
    on a plain grey-blue wall (tinted with ``hue`` if given) with sensor noise."""
    count, face_px = faces.shape[:2]
    free = frame_size_px - face_px
    left = int(rng.integers(free // 2, free + 1))
    top = int(rng.integers(0, free + 1))
    wall = tint(np.array([118, 124, 134], np.float32) * rng.uniform(0.8, 1.2), hue)
    frames = wall + rng.normal(0.0, 3.0, (count, frame_size_px, frame_size_px, 3)).astype(np.float32)
    frames[:, top:top + face_px, left:left + face_px] = faces
    return np.clip(frames, 0, 255).astype(np.uint8)


def _worker_context() -> BaseContext:
    """Where the rendering processes come from: a fork server where the platform has one, else spawn.

    Not fork: the caller may have threads (torch's, a tokenizer's, tqdm's monitor), and a child forked
    while one of them holds a lock inherits the lock held, by nobody, forever. ``make test-latest`` hung
    that way after ~700 tests (a worker in ``futex_wait``). A fork server forks from a clean
    single-threaded process; the price is the ``if __name__ == "__main__":`` guard in a caller's script
    (the workers import ``__main__``), as with spawn, and ~0.3 s per worker to import this module.
    """
    return get_context("forkserver" if "forkserver" in get_all_start_methods() else "spawn")


def _write_one(job: tuple[ClipSpec, StyleConfig, float, str]) -> None:
    """Render one clip and move it into place whole (a crash leaves no half file under its name)."""
    spec, style, apex_fraction, path_str = job
    path = Path(path_str)
    frames, waveform = render_clip(spec, style, apex_fraction)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write_clip(tmp, frames, style.fps, waveform, sample_rate_hz=style.sample_rate_hz)
    os.replace(tmp, path)


def _to_sample(spec: ClipSpec, path: Path, with_reasoning: bool, config: SynthConfig) -> Sample:
    reasoning = spec.reasoning(config.cues_per_modality, config.reasoning_cue_wording) if with_reasoning else None
    return Sample(id=spec.id, corpus="synth", video=str(path), label=spec.label, label_raw=spec.label,
                  split=spec.split, subtitle=spec.subtitle, reasoning=reasoning,
                  meta=spec.meta(config.cues_per_modality,
                                 config.pretrain_tasks if spec.split == "pretrain" else None))


def _clear_split(clip_dir: Path, split: str) -> None:
    """Remove this generator's files from a split folder (nothing else)."""
    ours = re.compile(rf"^(\.?{re.escape(split)}-\d+(\.tmp)?\.\w+|{re.escape(_FINGERPRINT_FILE)}|{COMPLETE_MARKER})$")
    for entry in clip_dir.iterdir():
        if entry.is_file() and ours.match(entry.name):
            entry.unlink()


def write_split(out_dir: str | os.PathLike, config: SynthConfig, split: str, seed: int = 0,
                progress: bool = True, workers: int | None = None) -> Path:
    """Build one split (or leave it alone when it is finished and current); returns the manifest path."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    out_dir = Path(out_dir)
    manifest = out_dir / f"{split}.jsonl"
    clip_dir = out_dir / "clips" / split
    marker = clip_dir / COMPLETE_MARKER
    fingerprint = split_fingerprint(config, split, seed)
    if manifest.is_file() and marker.is_file() and marker.read_text().strip() == fingerprint:
        logger.info("%s: complete, nothing to do", split)
        return manifest

    # From here on the split is unfinished: no marker, no manifest until the end.
    marker.unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)
    state = clip_dir / _FINGERPRINT_FILE
    if clip_dir.is_dir() and (not state.is_file() or state.read_text().strip() != fingerprint):
        logger.info("%s: clips were made with other settings; rebuilding", split)
        _clear_split(clip_dir, split)
    clip_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state, fingerprint + "\n")
    for stale in clip_dir.glob(f".{split}-*.tmp.*"):
        stale.unlink()

    specs = [sample_clip_spec(config, split, index, seed) for index in range(config.split_sizes.get(split, 0))]
    styles = [config.style_for(split, spec.index) for spec in specs]
    paths = [clip_path(out_dir, split, spec.index, style) for spec, style in zip(specs, styles)]
    jobs = [(spec, style, config.apex_fraction, str(path))
            for spec, style, path in zip(specs, styles, paths) if not path.is_file()]
    if len(jobs) < len(specs):
        logger.info("%s: resuming, %d of %d clips already written", split, len(specs) - len(jobs), len(specs))
    if workers is None:
        # Below ~100 clips the pool start-up outweighs the second core.
        workers = min(2, os.cpu_count() or 1) if len(jobs) >= _MIN_JOBS_PER_PROCESS_POOL else 1
    bar = tqdm(total=len(jobs), desc=f"synth {split}", unit="clip", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context()) as pool:
                for _ in pool.map(_write_one, jobs, chunksize=8):
                    bar.update()
        except BrokenProcessPool as error:
            raise RuntimeError(
                f"{split}: a clip-rendering process died ({error}). If a script generates the benchmark at its "
                "top level, it needs the `if __name__ == \"__main__\":` guard (the processes import __main__); "
                "a process killed for memory ends the same way (workers=1 renders in this process). The clips "
                "written so far are kept; a re-run resumes.") from error
    else:
        for job in jobs:
            _write_one(job)
            bar.update()
    bar.close()

    samples = [_to_sample(spec, path, with_reasoning=split == "cold_start", config=config)
               for spec, path in zip(specs, paths)]
    write_samples(manifest, samples, relative_to=out_dir)
    atomic_write_text(marker, fingerprint + "\n")
    return manifest


def generate_benchmark(out_dir: str | os.PathLike, preset: str | SynthConfig = "default", seed: int = 0,
                       splits: list[str] | tuple[str, ...] | None = None, progress: bool = True,
                       workers: int | None = None) -> dict[str, Path]:
    """Generate (or complete) the benchmark in ``out_dir``; returns ``{split: manifest path}``.

    ``preset`` is a name of ``PRESETS`` or a :class:`SynthConfig`; ``splits`` defaults to every split
    with a non-zero size; ``workers`` > 1 renders clips in that many processes (same output; None:
    up to 2 processes for splits of 100 clips or more, else 1). The processes import ``__main__``: a
    script that calls this at its top level needs the ``if __name__ == "__main__":`` guard.
    """
    config = get_preset(preset) if isinstance(preset, str) else preset
    if not isinstance(config, SynthConfig):
        raise TypeError(f"preset must be a preset name or a SynthConfig, got {type(preset).__name__}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}; use 1 or more")
    wanted = [s for s in SPLITS if config.split_sizes.get(s, 0) > 0] if splits is None else list(splits)
    unknown = sorted(set(wanted) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; use {SPLITS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = json.dumps({"seed": seed, "config": config.to_dict(), "version": GENERATOR_VERSION}, indent=2)
    config_file = out_dir / "synth_config.json"
    if not config_file.is_file() or config_file.read_text() != settings + "\n":
        atomic_write_text(config_file, settings + "\n")
    return {split: write_split(out_dir, config, split, seed, progress, workers) for split in wanted}


def file_hashes(out_dir: str | os.PathLike) -> dict[str, str]:
    """sha256 of the benchmark's config, every manifest and every clip, by path relative to ``out_dir``
    (``/``-separated), in sorted order. The progress markers are left out: they are bookkeeping."""
    out_dir = Path(out_dir)
    files = [out_dir / "synth_config.json", *out_dir.glob("*.jsonl"), *out_dir.glob("clips/*/*")]
    found = {path.relative_to(out_dir).as_posix(): path for path in files
             if path.is_file() and path.name not in (_FINGERPRINT_FILE, COMPLETE_MARKER)}
    return {name: hashlib.sha256(found[name].read_bytes()).hexdigest() for name in sorted(found)}


def benchmark_digest(out_dir: str | os.PathLike) -> dict[str, str]:
    """A short digest per split (its manifest and clips) and of everything (``all``): equal digests, equal
    files. The demo records it beside its numbers."""
    hashes = file_hashes(out_dir)

    def digest(names: list[str]) -> str:
        lines = "".join(f"{hashes[name]}  {name}\n" for name in names)
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()[:16]

    splits = sorted({name.split("/")[1] for name in hashes if name.startswith("clips/")}
                    | {name[:-len(".jsonl")] for name in hashes if name.endswith(".jsonl")})
    result = {split: digest([n for n in hashes if n == f"{split}.jsonl" or n.startswith(f"clips/{split}/")])
              for split in splits}
    result["all"] = digest(list(hashes))
    return result
