"""What the demo run decides: :class:`DemoConfig` (every recipe setting, stated once), the stages' budgets
(:class:`StageBudget`), the rows it reports (``VARIANTS``) and the pairs it compares (``PAIRS``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from r1omni.clips import ATTRIBUTION_METHODS
from r1omni.synth.config import TEST_SPLITS, VALIDATION_SPLITS
from r1omni.train.language import LanguageConfig
from r1omni.train.towers import TOWER_PARTS, TowerConfig

__all__ = ["DemoConfig", "StageBudget", "tower_budget", "ALL_PARTS", "TOWER_PARTS", "VARIANTS", "PAIRS", "SEPARATOR",
           "split_key"]


VARIANTS = ("base", "cold_start_sft", "label_sft", "rlvr", "rlvr_grounding")


# The paired comparisons every table reports: (variant, against).
PAIRS = (("rlvr", "cold_start_sft"), ("rlvr", "label_sft"), ("rlvr_grounding", "rlvr"))


SEPARATOR = "-" * 78


# Base pre-training trains the whole model: its towers are random (HumanOmni's come pre-trained).
ALL_PARTS = ["llm", "vision_tower", "audio_tower", "vision_projector", "audio_projector"]


def split_key(split: str) -> str:
    """The results' name of a split: ``test_id`` -> ``id``, ``test_mix`` -> ``mix``; validation splits
    keep their names."""
    return split.removeprefix("test_")


@dataclass
class StageBudget:
    """Steps, learning rate and trained parts of one stage (clips per step in ``DemoConfig``)."""

    steps: int
    lr: float
    trainable: list[str] | None = None
    """Model parts that train; None = the paper's choice for that stage."""


def tower_budget(steps: int) -> StageBudget:
    """The tower phase's budget at ``steps`` (0: none), its rate the library's (:class:`TowerConfig`)."""
    return StageBudget(steps=steps, lr=TowerConfig().optim.lr, trainable=list(TOWER_PARTS))


@dataclass
class DemoConfig:
    """Everything the demo run decides. ``quick()`` is the ~3-minute variant used by a test."""

    output_dir: str = "demo_out"
    synth_preset: str = "default"
    benchmark_dir: str | None = None
    """Where the benchmark lives; None = OUTPUT_DIR/benchmark."""
    model_preset: str = "qwen2.5-omni-demo"
    seed: int = 0
    threads: int = 2
    """torch CPU threads (measured: 2 beats 1 by ~25% for this ~1M-parameter model on 2 cores)."""
    prompt: str = "train"
    """Every variant is trained and evaluated with the same question (with the format instruction)."""
    clips_per_step: int = 8
    """Clips per SFT step."""
    pretrain: StageBudget = field(default_factory=lambda: StageBudget(steps=700, lr=6e-4, trainable=ALL_PARTS))
    cold_start: StageBudget = field(default_factory=lambda: StageBudget(steps=400, lr=1e-3, trainable=["llm"]))
    """Reasoning SFT on the cold-start split (~5.5 passes over its 580 clips). Chosen on validation against 200
    steps (seeds 0, 1, 2, the rest of the recipe unchanged): the cold start gained +0.03 to +0.13 val_id / val_ood,
    RLVR +0.01 to +0.10 and its face-only accuracy reached 0.67-0.70 val_id (0.38-0.51 before), hallucinated cue
    claims fell in every reasoning row; what it costs is RLVR's margin over its own cold start (val_ood +0.000 /
    +0.014 / -0.019): a cold start that learned what its data teaches leaves GRPO less to add (README "Three
    levers re-screened with the tower phase")."""
    label_sft_epochs: float = 1.0
    label_sft: StageBudget = field(default_factory=lambda: StageBudget(steps=0, lr=1e-3, trainable=["llm"]))
    """Its steps come from ``label_sft_epochs`` (one pass over the training split, as MAFW-DFEW-SFT)."""
    grpo_epochs: float = 1.0
    """GRPO's budget in passes over the training split (its steps, unless ``grpo.steps`` is set): at
    least label SFT's, so that the two are compared at the same clip-views."""
    grpo: StageBudget = field(default_factory=lambda: StageBudget(steps=0, lr=1e-4, trainable=["llm"]))
    grpo_clips_per_step: int = 16
    grpo_generations: int = 4
    """G. With 16 clips per step, 64 completions a step as with 8 x 8, twice the clips per second."""
    grpo_beta: float = 0.2
    """β of the KL term to the frozen cold start (the paper: 0.04). At 0.04 the ~1M-parameter policy
    collapsed onto three or four answers, dropping the emotions its cold start got wrong most often;
    measured on the validation splits (same cold starts, RLVR − cold start, val_id / val_ood): seed 0
    +0.095 / +0.052 at 0.04, +0.119 / +0.110 at 0.2; seed 1 -0.029 / +0.014 and +0.014 / +0.062;
    seed 2 +0.019 / -0.019 and +0.043 / +0.100; at 0.5, seed 1 -0.048 / +0.019."""
    grpo_temperature: float = 0.5
    """Rollout temperature. The paper samples at 1.0; measured here, the ~1M-parameter cold start's
    samples at 1.0 were at chance accuracy (so GRPO only learned format and lost 0.2 ID WAR). From
    one cold start, 150 steps: T 0.7 / lr 5e-5 gave greedy ID +0.006 +- 0.028 over the cold start,
    T 0.5 / lr 1e-4 gave +0.091 +- 0.027: near-greedy samples differ where the model is unsure, so
    rewarding the right ones moves its greedy choice."""
    grpo_masked_modality: dict = field(default_factory=dict)
    """``GRPOConfig.masked_modality`` of both GRPO rows, e.g. ``{"weight": 0.02}`` (PAPO's term: the policy's KL
    without the video, maximised; empty: off, the library's default)."""
    grounding_weight: float = 0.5
    """w of the "RLVR + grounding" row (0 = no such row)."""
    max_new_tokens: int = 100
    eval_splits: tuple[str, ...] = TEST_SPLITS
    """Where every variant is evaluated; ``VALIDATION_SPLITS`` while tuning a recipe."""
    eval_batch_size: int = 64
    attribution_clips: int = 70
    """In-distribution clips used for modality attribution per variant (0 = skip). The modality balance
    takes its answer changes from the same clips (decoding them itself for the base, which attribution
    skips) and its token norms and face probe from the whole in-distribution split."""
    attribution_method: str = "reference"
    """How attribution and the balance's answer changes remove a stream: ``reference`` puts the streams of the
    first training clip labelled neutral in its place (face and voice at rest: an input of the kind the model
    was trained on), ``blank`` grey frames and silence, ``omit`` drops the placeholder. Blanks are cues to
    these models (seed 0's test models answer ``sad`` to 61 of 70 silenced clips), so blanking named the
    carrier in about half the clips whatever the model used; by reference 0.47-0.66 (README "Why attribution
    names the carrier...")."""
    media_norm: bool = True
    """Build the model with a LayerNorm after each media projector at the text embeddings' scale
    (``ThinkerDims.media_norm``): without it video tokens entered the LLM at ~15x the text tokens' norm."""
    frame_size: int | None = 112
    """Side in pixels the model resizes frames to (``ThinkerDims.frame_size``; None: the preset's 56). At 112
    a clip gives the LLM 32 video tokens instead of 8, and the face's parts fall in patches of their own."""
    towers: StageBudget = field(default_factory=lambda: tower_budget(TowerConfig.steps))
    """Tower pre-training before anything else (``r1omni.train.towers``): the video and audio towers, their
    projectors and the media norm regress each pre-training clip's face and voice cue values (the LLM frozen),
    as HumanOmni's towers come pre-trained on faces and speech (0 steps: none). Chosen on validation (seeds 0
    and 1 with and without it: label SFT's face-only accuracy 0.36-0.40 -> 0.70-0.74); on test every row of
    every seed gained (+0.07 to +0.20 on the mean of seeds 0, 1, 2; README "The embedded default")."""
    language: StageBudget = field(default_factory=lambda: StageBudget(steps=0, lr=LanguageConfig().optim.lr))
    """Text-only pre-training of the LLM before any clip (``r1omni.train.language``; it trains the LLM only):
    reading random subtitles back, so that the model can copy a quote from its prompt as a pre-trained LLM
    can. Off (0 steps) until it pays as a whole: on validation, seed 0, 400 steps raised the subtitle quoted
    right from 0.03 to 0.55 (cold start) but moved ID WAR by -0.03 and hallucinated cue claims from 0.19 to
    0.27 (README "What made the model see")."""
    perception: StageBudget = field(default_factory=lambda: StageBudget(steps=700, lr=6e-4, trainable=ALL_PARTS))
    """Perception pre-training before the base's instruction mix: the pre-training clips with every cue
    described (target ``description``), so that the towers and the LLM learn to see and hear before they
    learn the tasks (0 steps: none). Without it the instruction mix, which spends ~45 % of its clips on
    text-only tasks, left the face out of the LLM's decision (issue #26; README "What made the model see")."""
    label_modality_dropout: dict[str, float] = field(default_factory=dict)
    """``SFTConfig.modality_dropout`` of label SFT, e.g. ``{"audio": 0.5}``: the voice is the easier stream
    and wins the competition for the label unless it is sometimes absent (empty: every clip whole)."""

    def __post_init__(self) -> None:
        if self.attribution_method not in ATTRIBUTION_METHODS:
            raise ValueError(f"attribution_method must be one of {ATTRIBUTION_METHODS}, "
                             f"got {self.attribution_method!r}")
        self.eval_splits = tuple(self.eval_splits)
        unknown = [s for s in self.eval_splits if s not in TEST_SPLITS + VALIDATION_SPLITS]
        if unknown or not self.eval_splits:
            raise ValueError(f"eval_splits must name splits of {TEST_SPLITS + VALIDATION_SPLITS}, got {unknown}")

    @classmethod
    def quick(cls, output_dir: str = "demo_out_quick", seed: int = 0) -> "DemoConfig":
        """The full recipe on the quick benchmark with fewer pre-training and cold-start steps (rates as above)."""
        full = cls(output_dir=output_dir, synth_preset="quick", seed=seed, attribution_clips=14, eval_batch_size=70)
        return replace(full, perception=replace(full.perception, steps=80), pretrain=replace(full.pretrain, steps=80),
                       cold_start=replace(full.cold_start, steps=40), towers=tower_budget(50))
