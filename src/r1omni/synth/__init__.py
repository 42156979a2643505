"""The embedded audio-visual emotion benchmark: procedurally drawn faces and synthesised voices whose
interpretable cues carry the seven DFEW emotions, written as real media files with manifests for
every stage of the R1-Omni recipe (pre-training captions, cold-start reasoning, label training, an
in-distribution and an out-of-distribution test).

It exists so that the whole pipeline runs on a CPU in minutes and so that explanations can be
checked against known ground truth (which modality carried the label, which cues were shown). It is
not a model of real human affect: the emotion -> cue mapping is a fixed, documented convention
(:data:`r1omni.synth.cues.PROTOTYPES`).

Modules: ``config`` (SynthConfig, PRESETS), ``cues`` (prototypes in the cue space of
:mod:`r1omni.claims`), ``spec`` (per-clip content), ``face`` and ``voice`` (rendering), ``text``
(descriptions, reasoning, subtitles), ``generate`` (files, manifests, idempotence).
"""

from r1omni.synth.config import CARRIERS, PRESETS, SPLITS, StyleConfig, SynthConfig, get_preset
from r1omni.synth.cues import PROTOTYPES
from r1omni.synth.face import render_face
from r1omni.synth.generate import generate_benchmark, render_clip
from r1omni.synth.spec import ClipSpec, sample_clip_spec
from r1omni.synth.text import corpus, describe, write_reasoning
from r1omni.synth.voice import synthesize_voice

__all__ = [
    "CARRIERS", "PRESETS", "SPLITS", "StyleConfig", "SynthConfig", "get_preset",
    "PROTOTYPES",
    "ClipSpec", "sample_clip_spec", "render_face", "synthesize_voice", "render_clip",
    "describe", "write_reasoning", "corpus",
    "generate_benchmark",
]
