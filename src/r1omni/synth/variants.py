"""The benchmark variant of issue #32's RLVR-vs-SFT study: ambiguous clips, noisy training labels and a
background hue tied to the label in distribution only (``SynthConfig.ambiguous_fraction``,
``label_noise``, ``nuisance_strength``).

Each function takes a clip's spec as :func:`r1omni.synth.spec.sample_clip_spec` drew it and returns it
changed, drawing only from a random stream of its own, which the caller opens only when the option is on,
and drawing nothing from it in the splits where the option does not act. A benchmark with the options off
is therefore the one it was, byte for byte, and with one of them on, every clip it leaves alone is as it
was too.

This module decides content; it does not render or write files.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from r1omni.synth.config import AMBIGUITY_SPLITS, LABEL_NOISE_SPLITS, NUISANCE_SPLITS, SynthConfig
from r1omni.synth.cues import NOUNS, expression
from r1omni.synth.text import choose_subtitle

# A ClipSpec (r1omni.synth.spec, which imports this module: named here, not imported).
ClipSpec = Any

__all__ = ["make_ambiguous", "draw_background", "add_label_noise"]


def make_ambiguous(spec: ClipSpec, config: SynthConfig, rng: np.random.Generator) -> ClipSpec:
    """In ``AMBIGUITY_SPLITS``, with probability ``ambiguous_fraction`` per non-neutral clip, the clip as an
    ambiguous one: the face shows the drawn label A, the voice another non-neutral emotion B, both at
    ``carrier_intensity``, and the label is A with the rater's probability s_A / (s_A + s_B) (s: the two
    strengths), else B.

    Draws: nothing for a neutral clip or another split; else one uniform (is the clip ambiguous?); for an
    ambiguous clip then B, s_A, s_B, the rater's uniform, one normal per cue (6 face, 9 voice) and, when the
    subtitle hinted at A, one integer for an ordinary sentence instead (the words take no side, so the
    rater's probability stays the clip's only truth)."""
    if spec.split not in AMBIGUITY_SPLITS or spec.label == "neutral" or rng.random() >= config.ambiguous_fraction:
        return spec
    face_emotion = spec.label
    others = [other for other in NOUNS if other not in (face_emotion, "neutral")]
    voice_emotion = others[int(rng.integers(len(others)))]
    s_face = round(float(rng.uniform(*config.carrier_intensity)), 4)
    s_voice = round(float(rng.uniform(*config.carrier_intensity)), 4)
    p_face = s_face / (s_face + s_voice)
    face_wins = bool(rng.random() < p_face)
    cues = {"face": expression(face_emotion, s_face, "face", rng, config.cue_noise),
            "voice": expression(voice_emotion, s_voice, "voice", rng, config.cue_noise)}
    subtitle, hinted = spec.subtitle, spec.subtitle_emotion
    if hinted is not None:
        subtitle, hinted = choose_subtitle(None, rng), None
    return replace(spec, label=face_emotion if face_wins else voice_emotion, carrier="ambiguous",
                   label_modality="face" if face_wins else "voice",
                   distractor=voice_emotion if face_wins else face_emotion,
                   intensity={"face": s_face, "voice": s_voice}, cues=cues, subtitle=subtitle,
                   subtitle_carries_label=False, subtitle_emotion=hinted,
                   rater_probability=round(p_face if face_wins else 1 - p_face, 4))


def draw_background(spec: ClipSpec, config: SynthConfig, rng: np.random.Generator) -> ClipSpec:
    """The clip with a background hue (an index of ``config.labels``, whose hue in
    :data:`r1omni.synth.face.BACKGROUND_HUES` it is): in ``NUISANCE_SPLITS`` its label's with probability
    ``nuisance_strength``, else uniform; elsewhere always uniform. The label it follows is the one the
    clip's content shows (after an ambiguous clip's rating, before label noise, which the media never see).

    Draws: in ``NUISANCE_SPLITS`` one uniform and one integer (both always); elsewhere one integer."""
    labels = config.labels
    tied = spec.split in NUISANCE_SPLITS and rng.random() < config.nuisance_strength
    uniform = int(rng.integers(len(labels)))
    return replace(spec, background=labels.index(spec.label) if tied else uniform)


def add_label_noise(spec: ClipSpec, config: SynthConfig, rng: np.random.Generator) -> ClipSpec:
    """In ``LABEL_NOISE_SPLITS``, with probability ``label_noise``, the clip with its label replaced by one
    of the other labels drawn uniformly (``true_label`` keeps the truth; cues and media are unchanged).

    Draws: one uniform per clip of those splits, and one integer for a relabelled clip."""
    if spec.split not in LABEL_NOISE_SPLITS or rng.random() >= config.label_noise:
        return spec
    others = [label for label in config.labels if label != spec.label]
    return replace(spec, label=others[int(rng.integers(len(others)))], true_label=spec.label)
