"""What one clip will contain, drawn before anything is rendered: :class:`ClipSpec` and
:func:`sample_clip_spec`.

Each clip has its own random streams, seeded from ``(seed, split, index, stream)``, so a clip is
the same whatever else is generated and in whatever order: stream 0 draws the spec (label mix,
cue values, identity, speaker, subtitle), 1 the face's nuisances, 2 the voice's, 3 the wording of
the reasoning, 5 a pre-training clip's instruction task; the options of issue #32's study
(:mod:`r1omni.synth.variants`) draw from 6 (ambiguity), 7 (label noise) and 8 (background hue), each
opened only when its option is on. Labels are balanced within every block of 7 consecutive indices.
Identities and speakers come from per-style pools (seeded from ``(seed, style)``): a style's test
splits draw from a held-out part of its pool and its validation split from another, so evaluation is
subject-independent (the OOD pool's first part serves the pre-training clips rendered in that style).

This module decides content; it does not render or write files.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from r1omni.synth.config import TEST_SPLITS, VALIDATION_SPLITS, SynthConfig
from r1omni.synth.cues import NOUNS, expression, sample_carrier
from r1omni.synth.face import sample_identity
from r1omni.synth.text import choose_subtitle, describe, random_subtitle, write_instruction, write_reasoning
from r1omni.synth.variants import add_label_noise, draw_background, make_ambiguous
from r1omni.synth.voice import sample_speaker

__all__ = ["ClipSpec", "sample_clip_spec", "clip_rng", "SPEC_STREAM", "FACE_STREAM", "VOICE_STREAM",
           "TEXT_STREAM"]

SPEC_STREAM, FACE_STREAM, VOICE_STREAM, TEXT_STREAM = 0, 1, 2, 3
_LABEL_STREAM, _TASK_STREAM = 4, 5
_AMBIGUITY_STREAM, _NOISE_STREAM, _BACKGROUND_STREAM = 6, 7, 8
# ClipSpec fields added for issue #32's study: left out of meta() while None, so that old meta stays as it was.
_OPTIONAL_FIELDS = ("rater_probability", "true_label", "background")
_IDENTITY_STREAM, _SPEAKER_STREAM = 1_000_001, 1_000_002


def _code(name: str) -> int:
    """A stable integer for a name (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def clip_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """The generator of one random stream of one clip."""
    return np.random.default_rng([seed, _code(split), index, stream])


@dataclass
class ClipSpec:
    """The full content of one clip except the pixel and sample noise."""

    id: str
    split: str
    index: int
    seed: int
    label: str
    carrier: str
    """"both", "face", "voice" or "conflict" (see SynthConfig.carrier_weights); "independent" in pre-training
    clips under SynthConfig.pretrain_independent_modalities; "ambiguous" under SynthConfig.ambiguous_fraction."""
    label_modality: str
    """The modality showing the label: "face", "voice" or "both"."""
    distractor: str | None
    """In a conflict clip, the emotion the weak modality shows; in an "independent" one, the voice's; in an
    ambiguous one, the emotion of the modality the rater did not follow."""
    style: str
    intensity: dict[str, float]
    """Expression strength per modality (0 rest .. 1 prototype) of the emotion it shows."""
    cues: dict[str, dict[str, float]]
    """Apex cue values: {"face": {...}, "voice": {...}}."""
    identity: str
    identity_params: dict[str, Any]
    speaker: str
    speaker_params: dict[str, Any]
    subtitle: str | None
    subtitle_carries_label: bool
    subtitle_emotion: str | None = None
    """The emotion the subtitle's words hint at (None: ordinary words). In pre-training clips it is
    drawn independently of the label; elsewhere it is the label when ``subtitle_carries_label``."""
    rater_probability: float | None = None
    """In an ambiguous clip, the probability with which the rater chose ``label`` (None elsewhere)."""
    true_label: str | None = None
    """In a clip whose label noise replaced ``label``, the label its content shows (None elsewhere)."""
    background: int | None = None
    """The background hue, an index of the labels (SynthConfig.nuisance_strength); None: no tint."""

    def meta(self, max_cues_per_modality: int | None = None, pretrain_tasks: dict[str, float] | None = None
             ) -> dict[str, Any]:
        """The sample's ``meta``: ground truth for explanation and analysis; with ``pretrain_tasks`` also the
        clip's instruction (``task``, ``question``, ``answer``) for base pre-training."""
        row = asdict(self)
        for key in ("id", "split", "index", "seed", "label", "subtitle"):
            row.pop(key)
        for key in _OPTIONAL_FIELDS:
            if row[key] is None:
                del row[key]
        if self.true_label is not None:
            row["noisy_label"] = True
        row["description"] = describe(self.cues, max_cues_per_modality)
        if pretrain_tasks:
            rng = clip_rng(self.seed, self.split, self.index, _TASK_STREAM)
            row["task"], row["question"], row["answer"] = write_instruction(
                self.cues, self.subtitle, self.subtitle_emotion, rng, pretrain_tasks, max_cues_per_modality)
        return row

    def reasoning(self, max_cues_per_modality: int | None = None, cue_wording: str = "varied") -> str:
        """EMER-style reasoning from the true cues (its wording from the clip's text stream)."""
        return write_reasoning(self.cues, self.label, clip_rng(self.seed, self.split, self.index, TEXT_STREAM),
                               carrier=self.carrier, label_modality=self.label_modality,
                               distractor=self.distractor, subtitle=self.subtitle,
                               subtitle_carries_label=self.subtitle_carries_label,
                               max_cues_per_modality=max_cues_per_modality, cue_wording=cue_wording)


def _pool_range(config: SynthConfig, split: str, style: str) -> tuple[int, int]:
    """Which identities of the style's pool a split draws from: its last block for test splits, the block
    before it for its validation split, the rest for training (subject-independent evaluation). The OOD
    pool keeps the first block for the pre-training clips only when some are rendered in that style."""
    total = config.num_identities
    held_out = int(round(total * config.test_identity_fraction))
    if held_out == 0:
        return 0, total
    if split in TEST_SPLITS:
        return total - held_out, total
    if split in VALIDATION_SPLITS:
        return total - 2 * held_out, total - held_out
    return 0, total - 2 * held_out


def sample_clip_spec(config: SynthConfig, split: str, index: int, seed: int = 0) -> ClipSpec:
    """Draw the content of clip ``index`` of ``split``: label, modality mix, cue values, identity,
    speaker and subtitle, then apply the study options that are on. Pure function of its arguments."""
    return _apply_study_options(_draw_clip_spec(config, split, index, seed), config)


def _apply_study_options(spec: ClipSpec, config: SynthConfig) -> ClipSpec:
    """Ambiguity, then the background hue (it follows the rated label), then label noise (which the media
    never see); each option's stream is opened only when it is on, so with all off nothing is drawn."""
    if config.ambiguous_fraction > 0:
        spec = make_ambiguous(spec, config, clip_rng(spec.seed, spec.split, spec.index, _AMBIGUITY_STREAM))
    if config.nuisance_strength > 0:
        spec = draw_background(spec, config, clip_rng(spec.seed, spec.split, spec.index, _BACKGROUND_STREAM))
    if config.label_noise > 0:
        spec = add_label_noise(spec, config, clip_rng(spec.seed, spec.split, spec.index, _NOISE_STREAM))
    return spec


def _draw_clip_spec(config: SynthConfig, split: str, index: int, seed: int) -> ClipSpec:
    """The clip as the benchmark draws it without the study options (streams 0 and 4 only)."""
    style = config.style_for(split, index)
    labels = config.labels
    block, offset = divmod(index, len(labels))
    label = labels[int(clip_rng(seed, split, block, _LABEL_STREAM).permutation(len(labels))[offset])]
    rng = clip_rng(seed, split, index, SPEC_STREAM)

    carrier = sample_carrier(label, config.carriers_for(split), rng)
    strong = float(rng.uniform(*config.carrier_intensity))
    weak = float(rng.uniform(*config.distractor_intensity))
    distractor = None
    if split == "pretrain" and config.pretrain_independent_modalities:
        # The face shows the clip's label, the voice an emotion drawn apart from it: no description of one
        # modality can then be read off the other, so pre-training has to look at the face to describe it.
        carrier, label_modality = "independent", "face"
        distractor = labels[int(rng.integers(len(labels)))]
        shown = {"face": (label, strong), "voice": (distractor, float(rng.uniform(*config.carrier_intensity)))}
    elif carrier == "conflict":
        label_modality = "face" if rng.random() < 0.5 else "voice"
        if split == "test_mix":
            label_modality = config.mix_conflict_modality
        others = [other for other in NOUNS if other not in (label, "neutral")]
        distractor = others[int(rng.integers(len(others)))]
        shown = {label_modality: (label, strong),
                 ("voice" if label_modality == "face" else "face"): (distractor, weak)}
    elif carrier in ("face", "voice"):
        label_modality = carrier
        shown = {carrier: (label, strong), ("voice" if carrier == "face" else "face"): ("neutral", 0.0)}
    else:
        label_modality = "both"
        second = float(rng.uniform(*config.carrier_intensity))
        shown = {"face": (label, strong), "voice": (label, second)}
    cues = {m: expression(shown[m][0], shown[m][1], m, rng, config.cue_noise) for m in ("face", "voice")}
    # A neutral display has no strength: record 0 whatever was drawn.
    intensity = {m: 0.0 if shown[m][0] == "neutral" else round(shown[m][1], 4) for m in ("face", "voice")}

    low, high = _pool_range(config, split, style.name)
    face_index = int(rng.integers(low, high))
    voice_index = int(rng.integers(low, high))
    style_code = _code(style.name)
    identity_params = sample_identity(np.random.default_rng([seed, style_code, _IDENTITY_STREAM, face_index]),
                                      style.face_style)
    speaker_params = sample_speaker(np.random.default_rng([seed, style_code, _SPEAKER_STREAM, voice_index]),
                                    style.voice_style)

    subtitle, carries, hinted = None, False, None
    if rng.random() < config.subtitle_fraction:
        if split == "pretrain":   # the words point anywhere: reading them must not teach the face / voice mapping
            emotions = [other for other in NOUNS if other != "neutral"]
            hints = rng.random() < config.pretrain_hint_fraction
            hinted = emotions[int(rng.integers(len(emotions)))] if hints else None
        else:
            carries = label != "neutral" and rng.random() < config.label_hint_fraction
            hinted = label if carries else None
        subtitle = choose_subtitle(hinted, rng)
        if split == "pretrain" and hinted is None and config.pretrain_random_subtitles \
                and rng.random() < config.pretrain_random_subtitles:   # no draw at all when off
            subtitle = random_subtitle(rng)
        carries = hinted == label and hinted is not None

    return ClipSpec(
        id=f"synth-{split}-{index:05d}", split=split, index=index, seed=seed, label=label, carrier=carrier,
        label_modality=label_modality, distractor=distractor, style=style.name, intensity=intensity, cues=cues,
        identity=f"{style.name}-face-{face_index:02d}", identity_params=identity_params,
        speaker=f"{style.name}-voice-{voice_index:02d}", speaker_params=speaker_params,
        subtitle=subtitle, subtitle_carries_label=carries, subtitle_emotion=hinted,
    )
