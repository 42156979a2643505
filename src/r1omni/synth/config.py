"""Typed settings of the embedded benchmark: :class:`StyleConfig` (how clips look and sound and which
file format they use), :class:`SynthConfig` (split sizes, modality mix, cue strengths) and ``PRESETS``.

A config says *what* to generate; it knows nothing about drawing, synthesis or files. Every field is
plain data so that a config serialises to JSON (the generator fingerprints it to decide whether an
existing split is still valid).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from r1omni.labels import DFEW

__all__ = ["StyleConfig", "SynthConfig", "PRESETS", "SPLITS", "VALIDATION_SPLITS", "TEST_SPLITS", "OOD_SPLITS",
           "CARRIERS", "PRETRAIN_TASKS", "AMBIGUITY_SPLITS", "LABEL_NOISE_SPLITS", "NUISANCE_SPLITS", "get_preset"]

# The splits, in generation order, mirroring the paper's stages (see r1omni.synth.generate): base
# pre-training, cold start, RL / label training, validation in and out of distribution (for tuning
# recipes), and three test splits: in distribution, another style (test_ood) and another style with
# another modality mix (test_mix, RAVDESS's role: acted, voice-led).
SPLITS = ("pretrain", "cold_start", "train", "val_id", "val_ood", "test_id", "test_ood", "test_mix")
VALIDATION_SPLITS = ("val_id", "val_ood")
TEST_SPLITS = ("test_id", "test_ood", "test_mix")
OOD_SPLITS = ("val_ood", "test_ood", "test_mix")
# Base pre-training tasks (instruction data with no face / voice -> emotion mapping; see synth.text).
PRETRAIN_TASKS = ("describe", "face", "voice", "cue", "subtitle", "text_emotion")
# Which modality carries the label in a clip (the shares drawn by carrier_weights; a clip made ambiguous
# by SynthConfig.ambiguous_fraction has carrier "ambiguous" instead).
CARRIERS = ("both", "face", "voice", "conflict")
# Where the options of the RLVR-vs-SFT study (issue #32) act: the labelled training splits get ambiguous
# clips, only the RL / label-training split gets noisy labels (the cold start's reasoning is written from
# the true cues), and the background hue follows the label in the in-distribution labelled splits only.
AMBIGUITY_SPLITS = ("cold_start", "train")
LABEL_NOISE_SPLITS = ("train",)
NUISANCE_SPLITS = ("cold_start", "train", "val_id", "test_id")
_CONTAINERS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class StyleConfig:
    """How the clips of one style look, sound and are stored. "id" is the training style, "ood" the
    shifted one that plays RAVDESS's role; the emotion -> cue mapping is the same in both."""

    name: str = "id"
    """Style name stored in every sample's ``meta["style"]``."""
    container: str = ".mp4"
    """File suffix; chooses container and codecs (r1omni.media.encode.CONTAINER_CODECS)."""
    frame_size_px: int = 64
    """Width and height of the (square) frames in pixels; must be even for yuv420p."""
    num_frames: int = 8
    """Frames per clip; the clip lasts ``num_frames / fps`` seconds, sound included."""
    fps: float = 8.0
    """Frame rate of the video stream."""
    sample_rate_hz: int = 16000
    """Sample rate the voice is synthesised at and stored with."""
    face_style: str = "soft"
    """Drawing style, a key of ``r1omni.synth.face.FACE_STYLES``."""
    voice_style: str = "buzz"
    """Voice timbre and background noise, a key of ``r1omni.synth.voice.VOICE_STYLES``."""
    pose_variation: float = 0.3
    """Scales the head's size, position and roll ranges (1 = +-5 % position, +-7 degrees roll;
    0 = a fixed head, only the +-1 px camera shake). Measured: a tiny ViT trained from scratch on
    face-only clips reached 0.81 held-out accuracy at 0.3 but 0.50 at 1.0 in the same budget, so
    the default keeps pose modest (the probe in the project notes made the same finding)."""

    face_fraction: float = 1.0
    """Side of the face picture as a share of the frame. Below 1 the face is drawn that much smaller and
    placed off-centre (in the right half, at a height drawn per clip) on a plain background, as a
    phone at arm's length frames a person: for measuring what a face crop recovers."""

    def __post_init__(self) -> None:
        if not 0.2 <= self.face_fraction <= 1:
            raise ValueError(f"StyleConfig.face_fraction={self.face_fraction}; use a value in [0.2, 1]")
        if self.container not in _CONTAINERS:
            raise ValueError(f"StyleConfig.container={self.container!r}; use one of {_CONTAINERS}")
        if self.frame_size_px < 32 or self.frame_size_px % 2:
            raise ValueError(f"StyleConfig.frame_size_px={self.frame_size_px}; use an even size >= 32")
        if self.num_frames < 2:
            raise ValueError(f"StyleConfig.num_frames={self.num_frames}; a clip needs at least 2 frames")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"StyleConfig.fps={self.fps}; use 1..60")
        if not 0 <= self.pose_variation <= 1:
            raise ValueError(f"StyleConfig.pose_variation={self.pose_variation}; use a value in [0, 1]")
        if self.sample_rate_hz not in (8000, 16000, 24000, 48000):
            raise ValueError(f"StyleConfig.sample_rate_hz={self.sample_rate_hz}; use 8000, 16000, 24000 or "
                             "48000 (rates every container here can store)")
        # Imported here: the style tables live with the renderers, which import this module.
        from r1omni.synth.face import FACE_STYLES
        from r1omni.synth.voice import VOICE_STYLES

        if self.face_style not in FACE_STYLES:
            raise ValueError(f"StyleConfig.face_style={self.face_style!r}; known: {sorted(FACE_STYLES)}")
        if self.voice_style not in VOICE_STYLES:
            raise ValueError(f"StyleConfig.voice_style={self.voice_style!r}; known: {sorted(VOICE_STYLES)}")

    @property
    def duration_seconds(self) -> float:
        return self.num_frames / self.fps


def _default_sizes() -> dict[str, int]:
    return {"pretrain": 1050, "cold_start": 580, "train": 2100, "val_id": 210, "val_ood": 210, "test_id": 350,
            "test_ood": 350, "test_mix": 350}


def _default_carriers() -> dict[str, float]:
    return {"both": 0.45, "face": 0.2, "voice": 0.2, "conflict": 0.15}


def _mix_carriers() -> dict[str, float]:
    return {"both": 0.25, "face": 0.0, "voice": 0.45, "conflict": 0.3}


def _pretrain_tasks() -> dict[str, float]:
    return {"describe": 0.3, "face": 0.1, "voice": 0.1, "cue": 0.2, "subtitle": 0.15, "text_emotion": 0.15}


def _ood_style() -> StyleConfig:
    return StyleConfig(name="ood", container=".webm", frame_size_px=80, num_frames=10, fps=10.0,
                       sample_rate_hz=24000, face_style="flat", voice_style="reed")


@dataclass
class SynthConfig:
    """Everything that decides the content of a generated benchmark (together with the seed)."""

    split_sizes: dict[str, int] = field(default_factory=_default_sizes)
    """Clips per split; keys from ``SPLITS``. Labels are balanced within every block of 7 clips."""
    id_style: StyleConfig = field(default_factory=StyleConfig)
    """Style of every split but the out-of-distribution ones (``OOD_SPLITS``)."""
    ood_style: StyleConfig = field(default_factory=_ood_style)
    """Style of ``val_ood``, ``test_ood`` and ``test_mix``: other faces, voices, noise and file format,
    same cue mapping."""
    carrier_weights: dict[str, float] = field(default_factory=_default_carriers)
    """Share of clips per carrier (normalised): "both" modalities show the label; only the "face" or
    only the "voice" does (the other stays at rest); "conflict": one shows it strongly, the other
    weakly shows another emotion. Neutral clips are always "both" (nothing to carry)."""
    mix_carrier_weights: dict[str, float] = field(default_factory=_mix_carriers)
    """The carrier shares of ``test_mix``: voice-led, as RAVDESS's acted speech is (a model that took
    a face shortcut in training loses here)."""
    mix_conflict_modality: str = "voice"
    """In ``test_mix`` conflict clips this modality shows the label strongly (the other a weak distractor)."""
    pretrain_tasks: dict[str, float] = field(default_factory=_pretrain_tasks)
    """Share of base pre-training clips per instruction task (normalised; keys from ``PRETRAIN_TASKS``):
    describe the clip, the face or the voice; one cue's level; read the subtitle back; and, from the
    subtitle's words alone, the emotion question answered in the <think>/<answer> format. None of
    them ties a face or a voice to an emotion word, so the base answers, mostly by guessing."""
    pretrain_independent_modalities: bool = False
    """In base pre-training clips, let the voice show an emotion drawn independently of the face's. Off by
    default: with both showing the same one, the ~1M-parameter demo model describes the face from the voice
    and never reads the frames (its answers were identical with blank frames in 16 of 16 clips). On, with
    the describe and face tasks weighted a little higher (validation seed 0): face-carried clips rose from
    0.13 to 0.26 after label SFT and to 0.21 after the cold start, but WAR fell (label SFT 0.443 -> 0.390,
    cold start 0.319 -> 0.290), so it stays an experiment."""
    pretrain_hint_fraction: float = 0.5
    """Share of pre-training subtitles whose words hint at an emotion, drawn independently of what the
    clip's face and voice show (so the text task teaches reading, not the face / voice mapping)."""
    pretrain_random_subtitles: float = 0.0
    """Share of the pre-training clips with ordinary words whose subtitle is instead a random string of the
    benchmark's words (:func:`r1omni.synth.text.random_subtitle`), so that reading it back can only be done
    by copying: the few dozen sentences of the other splits can be memorised instead (issue #26). Only the
    pre-training manifest changes (the media do not); 0 keeps the benchmark as it was. Measured with the
    demo's language phase (validation, seed 0): the subtitle quoted right 0.55 -> 0.58, WAR of every row
    down 0.03-0.07, so it stays 0."""
    carrier_intensity: tuple[float, float] = (0.75, 1.0)
    """Range of the expression strength (0 rest .. 1 prototype) of a label-carrying modality."""
    distractor_intensity: tuple[float, float] = (0.3, 0.45)
    """Range of the strength of the other emotion shown by the weak modality of a conflict clip."""
    cue_noise: float = 0.06
    """Standard deviation of per-clip noise added to every cue value (cue units, ranges 1 or 2)."""
    subtitle_fraction: float = 1.0
    """Share of clips that have a subtitle."""
    label_hint_fraction: float = 0.15
    """Share of subtitled non-neutral clips whose sentence hints at the label (others are ordinary)."""
    apex_fraction: float = 0.4
    """Share of the clip after which the expression reaches its apex (onset starts near rest)."""
    cues_per_modality: int | None = 3
    """Descriptions and cold-start reasoning name at most this many cues per modality (the
    strongest, in a fixed order); None = every cue away from rest. Short texts keep generation
    cheap for tiny models."""
    reasoning_cue_wording: str = "canonical"
    """"canonical": reasoning names cues in the descriptions' wording (a perception-pre-trained
    model can reuse it; openers, weighing sentences and conclusions still vary); "varied": each cue
    in one of its wordings at random."""
    pretrain_ood_share: float = 1 / 3
    """Share of the base pre-training clips rendered in the OOD style (cue descriptions only, no
    emotion words; their faces and voices come from a part of the OOD pool that test_ood never
    uses). HumanOmni-0.5B's perception was pre-trained on varied human-centric video before any
    emotion data; this is the analogue. Every emotion-labelled split stays in the ID style, so
    test_ood still measures how emotion training on one style transfers to another. Measured in
    the demo (seed 0): with 0, every variant was near chance on test_ood (cold start 0.31, label SFT
    0.33) because the towers had never seen that style; with 1/3, 0.50 and 0.65."""
    num_identities: int = 40
    """Face identities and speakers per style (a pool; each clip draws one of each)."""
    test_identity_fraction: float = 0.2
    """Share of a style's pool kept for its test splits, and as much again for its validation split
    (subject-independent evaluation); 0 shares the pool."""
    ambiguous_fraction: float = 0.0
    """Share of the non-neutral clips of ``AMBIGUITY_SPLITS`` that are ambiguous, as many DFEW / MAFW clips
    are (raters split between what the face and the voice show): here the face shows the clip's emotion,
    the voice another, both clearly (``carrier_intensity``), and a rater picks one with probability
    proportional to its strength (``meta["rater_probability"]``). No reading is right for sure, so fitting
    these labels means memorising the rater's coin flips, which no evaluation split shares: the study of
    issue #32 can measure what that memorising costs SFT against RLVR. 0 keeps the benchmark as it was."""
    label_noise: float = 0.0
    """Share of the ``train`` clips whose label is replaced by another drawn uniformly (media unchanged;
    ``meta["true_label"]`` keeps the truth), as careless annotation does. SFT must memorise these labels,
    which no evaluation split shares. The cold start is left clean: its reasoning is written from the true
    cues. 0 keeps the benchmark as it was."""
    nuisance_strength: float = 0.0
    """A background hue tied to the label in distribution only, as a corpus's scenes and lighting are: in
    ``NUISANCE_SPLITS`` a clip's hue is its label's with this probability (else one of the seven at
    random); in the OOD splits and pre-training it is always random. A model can take the hue shortcut on
    the training style and lose it under shift, so the study can measure which recipe took it. Face and
    voice are untouched. 0 draws no hue at all: the frames stay as they were."""

    def __post_init__(self) -> None:
        if isinstance(self.id_style, dict):
            self.id_style = StyleConfig(**self.id_style)
        if isinstance(self.ood_style, dict):
            self.ood_style = StyleConfig(**self.ood_style)
        self.carrier_intensity = tuple(self.carrier_intensity)  # type: ignore[assignment]
        self.distractor_intensity = tuple(self.distractor_intensity)  # type: ignore[assignment]
        unknown = sorted(set(self.split_sizes) - set(SPLITS))
        if unknown:
            raise ValueError(f"SynthConfig.split_sizes has unknown split(s) {unknown}; use {SPLITS}")
        bad = {k: v for k, v in self.split_sizes.items() if not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(f"SynthConfig.split_sizes must be non-negative integers, got {bad}")
        for name, known in (("carrier_weights", CARRIERS), ("mix_carrier_weights", CARRIERS),
                            ("pretrain_tasks", PRETRAIN_TASKS)):
            weights = getattr(self, name)
            unknown = sorted(set(weights) - set(known))
            if unknown:
                raise ValueError(f"SynthConfig.{name} has unknown key(s) {unknown}; use {known}")
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"SynthConfig.{name} must be >= 0 with a positive sum, got {weights}")
        if self.mix_conflict_modality not in ("face", "voice"):
            raise ValueError(f"SynthConfig.mix_conflict_modality={self.mix_conflict_modality!r}; use 'face' or 'voice'")
        if not 0 <= self.test_identity_fraction <= 1 / 3:
            raise ValueError(f"SynthConfig.test_identity_fraction={self.test_identity_fraction}; use [0, 1/3] "
                             "(the same share again goes to validation)")
        for name in ("carrier_intensity", "distractor_intensity"):
            low, high = getattr(self, name)
            if not 0 <= low <= high <= 1:
                raise ValueError(f"SynthConfig.{name}=({low}, {high}); need 0 <= low <= high <= 1")
        if self.distractor_intensity[1] >= self.carrier_intensity[0]:
            raise ValueError("SynthConfig.distractor_intensity must lie below carrier_intensity, or a "
                             "conflict clip has no stronger modality; lower the distractor range")
        for name in ("subtitle_fraction", "label_hint_fraction", "pretrain_ood_share", "pretrain_hint_fraction",
                     "pretrain_random_subtitles", "ambiguous_fraction", "label_noise", "nuisance_strength"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"SynthConfig.{name}={value}; use a fraction in [0, 1]")
        if not 0 < self.apex_fraction <= 1:
            raise ValueError(f"SynthConfig.apex_fraction={self.apex_fraction}; use (0, 1]")
        if not 0 <= self.cue_noise <= 0.3:
            raise ValueError(f"SynthConfig.cue_noise={self.cue_noise}; above 0.3 noise drowns the cues")
        if self.cues_per_modality is not None and self.cues_per_modality < 1:
            raise ValueError(f"SynthConfig.cues_per_modality={self.cues_per_modality}; use 1 or more, or None "
                             "for every cue")
        if self.reasoning_cue_wording not in ("canonical", "varied"):
            raise ValueError(f"SynthConfig.reasoning_cue_wording={self.reasoning_cue_wording!r}; use 'canonical' "
                             "or 'varied'")
        if self.num_identities < 2:
            raise ValueError(f"SynthConfig.num_identities={self.num_identities}; need at least 2")

    @property
    def labels(self) -> tuple[str, ...]:
        """The seven DFEW labels every split is balanced over."""
        return DFEW.labels

    def style_for(self, split: str, index: int = 0) -> StyleConfig:
        """The style of clip ``index`` of ``split``."""
        if split in OOD_SPLITS or (split == "pretrain" and self.is_ood_pretrain_clip(index)):
            return self.ood_style
        return self.id_style

    def carriers_for(self, split: str) -> dict[str, float]:
        """The carrier shares of ``split`` (``test_mix`` has its own)."""
        return self.mix_carrier_weights if split == "test_mix" else self.carrier_weights

    def is_ood_pretrain_clip(self, index: int) -> bool:
        """Whether pre-training clip ``index`` is OOD style: evenly interleaved, exactly
        ``floor(n * pretrain_ood_share)`` of the first n clips (so a prefix has the same mix)."""
        share = self.pretrain_ood_share
        return math.floor((index + 1) * share + 1e-6) > math.floor(index * share + 1e-6)

    def styles_of(self, split: str) -> list[StyleConfig]:
        """Every style a split uses (pretrain may mix two)."""
        if split == "pretrain" and self.pretrain_ood_share > 0:
            return [self.id_style, self.ood_style] if self.pretrain_ood_share < 1 else [self.ood_style]
        return [self.style_for(split)]

    def to_dict(self) -> dict[str, Any]:
        """Every field, except those added after generator version 6 while at their default: a benchmark
        generated without them keeps its ``synth_config.json`` and so its digest."""
        data = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SynthConfig":
        return cls(**data)


# Fields added after generator version 6, with the default that leaves the benchmark as it was.
_LATER_FIELDS: dict[str, Any] = {"pretrain_random_subtitles": 0.0, "ambiguous_fraction": 0.0, "label_noise": 0.0,
                                 "nuisance_strength": 0.0}
# The benchmark variant of issue #32's pre-registered RLVR-vs-SFT study.
_STUDY_OPTIONS: dict[str, float] = {"ambiguous_fraction": 0.2, "label_noise": 0.1, "nuisance_strength": 0.8}


def _sized(options: dict[str, Any] | None = None, **sizes: int) -> SynthConfig:
    return SynthConfig(split_sizes=dict(sizes), **(options or {}))


def _quick(options: dict[str, Any] | None = None) -> SynthConfig:
    return _sized(options, pretrain=70, cold_start=70, train=140, val_id=35, val_ood=35, test_id=70, test_ood=70,
                  test_mix=70)


PRESETS: dict[str, SynthConfig] = {
    # The demo: generation in a minute or two on 2 CPU cores, training in ~15 minutes.
    "default": SynthConfig(),
    # `r1omni demo --quick` and integration tests: seconds to generate.
    "quick": _quick(),
    # Unit tests of other modules: 2 clips per class and split.
    "tiny": _sized(pretrain=14, cold_start=14, train=14, val_id=14, val_ood=14, test_id=14, test_ood=14,
                   test_mix=14),
    # Issue #32's RLVR-vs-SFT study: the default benchmark with ambiguous clips, noisy training labels and a
    # label-tied background hue; and its quick-sized twin for trying the study's pipeline.
    "rl-vs-sft": SynthConfig(**_STUDY_OPTIONS),
    "rl-vs-sft-quick": _quick(_STUDY_OPTIONS),
}


def get_preset(name: str) -> SynthConfig:
    """A fresh copy of a preset (safe to modify); a clear error lists the known names."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown synth preset {name!r}; known: {', '.join(PRESETS)}") from None
    return replace(preset, split_sizes=dict(preset.split_sizes), carrier_weights=dict(preset.carrier_weights),
                   id_style=replace(preset.id_style), ood_style=replace(preset.ood_style))
