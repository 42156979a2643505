"""How often the measured cue levels (``r1omni.cues``) equal the generated benchmark's true levels.

This is the extractor's accuracy per cue: the ceiling of any grounding check or reward computed
from measured cues on clips without annotation. Two references are compared side by side: the
benchmark-wide default (what a user without speaker information gets) and each speaker's own
reference pitch (``meta.speaker_params.reference_semitones``, what per-speaker calibration buys).
Chance is about 1/3 for three-level cues and 1/2 for two-level ones (before class imbalance). For
the face it prints how many of the drawn faces OpenCV's cascade finds at all.

    python benchmarks/cues.py [--data demo_out/benchmark/test_id.jsonl ...] [--limit 350]

Without ``--data`` it generates the quick benchmark's test splits in a temporary folder.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

from r1omni.claims import cue_levels
from r1omni.cues import VoiceReference, face_cues, measure_face, voice_cues
from r1omni.media import load_audio, sample_frames
from r1omni.schema import read_samples
from r1omni.synth import generate_benchmark


def accuracy(manifest: Path, limit: int) -> None:
    samples = [s for s in read_samples(manifest) if s.meta.get("cues")][:limit]
    hits: dict[str, collections.Counter] = {"default": collections.Counter(), "speaker": collections.Counter()}
    counts: collections.Counter = collections.Counter()
    faces_found = smiles_checked = smiles_right = 0
    tick = time.perf_counter()
    for sample in samples:
        frames = sample_frames(sample.video, 8).frames
        face = face_cues(frames)
        faces_found += measure_face(frames).face_found
        if "mouth_curve" in face:
            smiles_checked += 1
            smiles_right += cue_levels(face)["mouth_curve"] == cue_levels(sample.meta["cues"])["mouth_curve"]
        waveform = load_audio(sample.audio or sample.video).waveform
        true = cue_levels({"voice": sample.meta["cues"]["voice"]})
        semitones = sample.meta.get("speaker_params", {}).get("reference_semitones", 0.0)
        default = VoiceReference()
        for name, reference in (("default", default),
                                ("speaker", VoiceReference(default.f0_hz * 2 ** (semitones / 12), default.level_dbfs))):
            measured = cue_levels(voice_cues(waveform, reference))
            for cue, level in measured.items():
                if cue in true:
                    hits[name][cue] += level == true[cue]
                    counts[cue] += name == "default"
    seconds = time.perf_counter() - tick
    print(f"\n{manifest} ({len(samples)} clips, {1000 * seconds / max(len(samples), 1):.1f} ms per clip)")
    print(f"  {'cue':12s} {'measured on':>11s} {'default ref':>11s} {'speaker ref':>11s}")
    for cue, n in counts.items():
        print(f"  {cue:12s} {n:11d} {hits['default'][cue] / n:11.2f} {hits['speaker'][cue] / n:11.2f}")
    print(f"  face found (Haar cascade) in {faces_found} of {len(samples)} clips; smile measured on {smiles_checked}, "
          f"its mouth level right on {smiles_right}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="*", type=Path, help="benchmark manifests (default: a quick benchmark)")
    parser.add_argument("--limit", type=int, default=350)
    args = parser.parse_args()
    if args.data:
        for manifest in args.data:
            accuracy(manifest, args.limit)
        return
    with tempfile.TemporaryDirectory(prefix="cue-bench-") as tmp:
        manifests = generate_benchmark(Path(tmp), preset="quick", splits=["test_id", "test_ood"], progress=False)
        for split in ("test_id", "test_ood"):
            accuracy(manifests[split], args.limit)


if __name__ == "__main__":
    main()
