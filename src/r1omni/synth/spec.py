"""What one clip will contain, drawn before anything is rendered: :class:`ClipSpec` and
:func:`sample_clip_spec`.

Each clip has its own random streams, seeded from ``(seed, split, index, stream)``, so a clip is
the same whatever else is generated and in whatever order: stream 0 draws the spec (label mix,
cue values, identity, speaker, subtitle), 1 the face's nuisances, 2 the voice's, 3 the wording of
the reasoning. Labels are balanced within every block of 7 consecutive indices. Identities and
speakers come from per-style pools (seeded from ``(seed, style)``); test_id draws from a held-out
part of the ID pool (and test_ood of the OOD pool, when pre-training clips use the OOD style).

This module decides content; it does not render or write files.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from r1omni.synth.config import SynthConfig
from r1omni.synth.cues import NOUNS, expression, sample_carrier
from r1omni.synth.face import sample_identity
from r1omni.synth.text import choose_subtitle, describe, write_reasoning
from r1omni.synth.voice import sample_speaker

__all__ = ["ClipSpec", "sample_clip_spec", "clip_rng", "SPEC_STREAM", "FACE_STREAM", "VOICE_STREAM",
           "TEXT_STREAM"]

SPEC_STREAM, FACE_STREAM, VOICE_STREAM, TEXT_STREAM = 0, 1, 2, 3
_LABEL_STREAM = 4
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
    """"both", "face", "voice" or "conflict" (see SynthConfig.carrier_weights)."""
    label_modality: str
    """The modality showing the label: "face", "voice" or "both"."""
    distractor: str | None
    """In a conflict clip, the emotion the weak modality shows; else None."""
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

    def meta(self, max_cues_per_modality: int | None = None) -> dict[str, Any]:
        """The sample's ``meta``: ground truth for explanation and analysis."""
        row = asdict(self)
        for key in ("id", "split", "index", "seed", "label", "subtitle"):
            row.pop(key)
        row["description"] = describe(self.cues, max_cues_per_modality)
        return row

    def reasoning(self, max_cues_per_modality: int | None = None, cue_wording: str = "varied") -> str:
        """EMER-style reasoning from the true cues (its wording from the clip's text stream)."""
        return write_reasoning(self.cues, self.label, clip_rng(self.seed, self.split, self.index, TEXT_STREAM),
                               carrier=self.carrier, label_modality=self.label_modality,
                               distractor=self.distractor, subtitle=self.subtitle,
                               subtitle_carries_label=self.subtitle_carries_label,
                               max_cues_per_modality=max_cues_per_modality, cue_wording=cue_wording)


def _pool_range(config: SynthConfig, split: str, style: str) -> tuple[int, int]:
    """Which identities of the style's pool a split draws from: the test split of a style keeps a
    held-out part when other splits use that style too (subject-independent testing)."""
    total = config.num_identities
    if style == config.ood_style.name and config.pretrain_ood_share == 0:
        return 0, total
    held_out = int(round(total * config.test_identity_fraction))
    if held_out in (0, total):
        return 0, total
    return (total - held_out, total) if split in ("test_id", "test_ood") else (0, total - held_out)


def sample_clip_spec(config: SynthConfig, split: str, index: int, seed: int = 0) -> ClipSpec:
    """Draw the content of clip ``index`` of ``split``: label, modality mix, cue values, identity,
    speaker and subtitle. Pure function of its arguments."""
    style = config.style_for(split, index)
    labels = config.labels
    block, offset = divmod(index, len(labels))
    label = labels[int(clip_rng(seed, split, block, _LABEL_STREAM).permutation(len(labels))[offset])]
    rng = clip_rng(seed, split, index, SPEC_STREAM)

    carrier = sample_carrier(label, config.carrier_weights, rng)
    strong = float(rng.uniform(*config.carrier_intensity))
    weak = float(rng.uniform(*config.distractor_intensity))
    distractor = None
    if carrier == "conflict":
        label_modality = "face" if rng.random() < 0.5 else "voice"
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

    subtitle, carries = None, False
    if rng.random() < config.subtitle_fraction:
        carries = label != "neutral" and rng.random() < config.label_hint_fraction
        subtitle = choose_subtitle(label if carries else None, rng)

    return ClipSpec(
        id=f"synth-{split}-{index:05d}", split=split, index=index, seed=seed, label=label, carrier=carrier,
        label_modality=label_modality, distractor=distractor, style=style.name, intensity=intensity, cues=cues,
        identity=f"{style.name}-face-{face_index:02d}", identity_params=identity_params,
        speaker=f"{style.name}-voice-{voice_index:02d}", speaker_params=speaker_params,
        subtitle=subtitle, subtitle_carries_label=carries,
    )
