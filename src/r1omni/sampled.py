"""Measurements made of sampled answers: pass@k, and the KL divergence of a policy from its starting model.

Greedy evaluation (:mod:`r1omni.evaluate`) says what a model answers; the RLVR-vs-SFT study
(``docs/study-rlvr-vs-sft.md``, issue #32) also needs what its samples can reach and how far training
moved it:

* :func:`pass_at_k`: k answers a clip sampled at a temperature, the number right per clip, pass@1 (the
  mean share right: the unbiased estimate) and pass@k (the share of clips with at least one right). The
  per-clip counts also pick the study's medium-difficulty clips (:meth:`PassAtK.medium_difficulty`).
  "Right" is evaluation's normalized track: the answer parsed by :func:`r1omni.inference.parse_answer`
  against the label set names the clip's label.
* :func:`kl_to_start`: KL(π ‖ π_start) estimated on completions sampled from π at temperature 1 with
  no top-k or top-p cut (samples of π itself): per completion Σ_t (log π(y_t) − log π_start(y_t)) over
  its tokens up to and including its stop token, both terms scored by ``Policy.token_logprobs``.

Both decode clips as evaluation does (:meth:`r1omni.clips.ClipLoader.for_policy`, one ``load_many`` a
batch); a clip whose media fails, or that the model rejects, is counted in ``skipped`` with its reason,
never dropped silently. Both run without gradients, the models in eval mode (each submodule's mode
restored after). Sampling draws from torch's global generator, seeded before each batch from
(``seed``, batch index) inside :func:`torch.random.fork_rng`: a result depends on the seed, the clips and
their batching (``batch_size``, and which clips of a batch fail), never on what ran before, and the
caller's random state is left as found. One process: no sharing of clips under ``accelerate launch``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from r1omni.clips import ClipLoader, LoadedClips, MediaCache
from r1omni.inference import parse_answer
from r1omni.labels import LabelSet
from r1omni.models import Completions, Policy, PreparedBatch, SamplingConfig
from r1omni.models.decoding import evaluating
from r1omni.models.placement import placement
from r1omni.schema import Sample

__all__ = ["PassAtK", "KLEstimate", "pass_at_k", "kl_to_start", "DEFAULT_PROMPT"]

DEFAULT_PROMPT = "train"
"""The question the demo trains and evaluates every variant with (``DemoConfig.prompt``; the study's
"evaluation prompt of the demo"), so that sampled answers are answers to the greedy evaluation's question."""

Progress = Callable[[int, int], None]


@dataclass
class PassAtK:
    """Right answers out of ``k`` samples per clip (clip id -> count), and the two rates over those clips."""

    counts: dict[str, int]
    k: int
    skipped_reasons: dict[str, str] = field(default_factory=dict)
    """Clip id -> why it was not answered (unreadable media, rejected by the model)."""
    settings: dict = field(default_factory=dict)
    """How the answers were sampled (the arguments of :func:`pass_at_k` that decide them)."""

    def __post_init__(self) -> None:
        if not self.counts:
            raise ValueError(f"pass@k over 0 clips means nothing ({_skip_note(self.skipped_reasons)})")
        outside = {clip: c for clip, c in self.counts.items() if not 0 <= c <= self.k}
        if outside:
            raise ValueError(f"right answers per clip must lie in [0, k={self.k}], got {outside}")

    @property
    def skipped(self) -> int:
        return len(self.skipped_reasons)

    @property
    def pass_at_1(self) -> float:
        """Mean over clips of c / k: the probability that one sampled answer is right (unbiased)."""
        return sum(self.counts.values()) / (self.k * len(self.counts))

    @property
    def pass_at_k(self) -> float:
        """The share of clips with at least one right answer of k."""
        return sum(c > 0 for c in self.counts.values()) / len(self.counts)

    def medium_difficulty(self) -> list[str]:
        """Clips with 1 to k − 1 right answers: those on which GRPO's group advantage is not zero (DC-SFT)."""
        return [clip for clip, c in self.counts.items() if 0 < c < self.k]

    def to_dict(self) -> dict:
        return {"k": self.k, "clips": len(self.counts), "pass_at_1": self.pass_at_1, "pass_at_k": self.pass_at_k,
                "skipped": self.skipped, "skipped_reasons": dict(self.skipped_reasons),
                "settings": dict(self.settings), "counts": dict(self.counts)}


@dataclass
class KLEstimate:
    """KL(π ‖ π_start) in nats, per completion and per token, with standard errors over clips."""

    per_completion: float
    per_token: float
    se_per_completion: float | None
    """Standard error of the mean over clips of each clip's mean log-ratio; None with fewer than 2 clips."""
    se_per_token: float | None
    """Standard error of the ratio (sum of log-ratios / tokens) by linearisation over clips; None below 2 clips."""
    completions: int
    tokens: int
    per_clip: dict[str, float] = field(default_factory=dict)
    """Clip id -> mean log-ratio per completion of its completions (for paired comparisons)."""
    skipped_reasons: dict[str, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return len(self.skipped_reasons)

    def to_dict(self) -> dict:
        return {"per_completion": self.per_completion, "per_token": self.per_token,
                "se_per_completion": self.se_per_completion, "se_per_token": self.se_per_token,
                "clips": len(self.per_clip), "completions": self.completions, "tokens": self.tokens,
                "skipped": self.skipped, "skipped_reasons": dict(self.skipped_reasons),
                "settings": dict(self.settings), "per_clip": dict(self.per_clip)}


def pass_at_k(policy: Policy, samples: list[Sample], labels: LabelSet, k: int = 4, temperature: float = 0.5,
              top_k: int = 50, max_new_tokens: int = 100, batch_size: int = 16, prompt: str = DEFAULT_PROMPT,
              seed: int = 0, media: MediaCache | None = None, progress: Progress | None = None) -> PassAtK:
    """Sample ``k`` answers for each clip and count the right ones (evaluation's normalized track).

    The defaults are the study's: k = 4 at GRPO's rollout temperature 0.5 (top-k 50, as GRPO samples),
    100 new tokens. ``batch_size`` is in clips (k rows each); ``media``: decoded clips shared with other
    measurements of the same files."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check_labelled(samples, labels)
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_k=top_k)
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    with torch.no_grad(), evaluating(policy.module):
        for index, loaded in _batches(policy, samples, prompt, batch_size, media, skipped, progress):
            completions = _sample(policy, policy.prepare(loaded.clips), k, sampling, seed, index)
            for text, row in zip(completions.texts, completions.clip_index.tolist(), strict=True):
                sample = loaded.kept[row]
                right = parse_answer(text, labels).label == sample.label
                counts[sample.id] = counts.get(sample.id, 0) + int(right)
    settings = {"temperature": temperature, "top_k": top_k, "max_new_tokens": max_new_tokens,
                "batch_size": batch_size, "prompt": prompt, "seed": seed, "label_set": labels.name}
    return PassAtK(counts, k, skipped, settings)


def kl_to_start(policy: Policy, start_policy: Policy, samples: list[Sample], completions_per_clip: int = 4,
                max_new_tokens: int = 100, batch_size: int = 16, prompt: str = DEFAULT_PROMPT, seed: int = 0,
                media: MediaCache | None = None, progress: Progress | None = None) -> KLEstimate:
    """Estimate KL(π ‖ π_start) from ``completions_per_clip`` completions a clip sampled from ``policy``.

    Untempered sampling (temperature 1, no top-k / top-p), so that the completions are draws of π and
    the mean log-ratio is an unbiased estimate of the KL (of completions cut at ``max_new_tokens``). Each
    model scores the completions on its own prepared prompt; a policy scored against itself (or a copy)
    gives exactly 0 where scoring is deterministic (the CPU). Decoding never samples the media tokens, so
    the draws are of π renormalised without them while the scores are the full softmax's: a bias of the
    order of π's mass on those tokens, nil for a model trained to write text."""
    if completions_per_clip < 1:
        raise ValueError(f"completions_per_clip must be >= 1, got {completions_per_clip}")
    _check_comparable(policy, start_policy)
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_k=0)
    sums: dict[str, float] = {}
    tokens: dict[str, int] = {}
    skipped: dict[str, str] = {}
    with torch.no_grad(), evaluating(policy.module), evaluating(start_policy.module):
        for index, loaded in _batches(policy, samples, prompt, batch_size, media, skipped, progress):
            batch = policy.prepare(loaded.clips)
            completions = _sample(policy, batch, completions_per_clip, sampling, seed, index)
            ratio = _log_ratio(policy.token_logprobs(batch, completions.ids, completions.clip_index),
                               start_policy.token_logprobs(start_policy.prepare(loaded.clips), completions.ids,
                                                           completions.clip_index), completions.mask)   # (N,)
            lengths = completions.mask.sum(dim=1).tolist()
            for value, length, row in zip(ratio.tolist(), lengths, completions.clip_index.tolist(), strict=True):
                clip = loaded.kept[row].id
                sums[clip] = sums.get(clip, 0.0) + value
                tokens[clip] = tokens.get(clip, 0) + int(length)
    if not sums:
        raise ValueError(f"a KL over 0 clips means nothing ({_skip_note(skipped)})")
    settings = {"completions_per_clip": completions_per_clip, "max_new_tokens": max_new_tokens,
                "batch_size": batch_size, "prompt": prompt, "seed": seed}
    return _kl_estimate(sums, tokens, completions_per_clip, skipped, settings)


def _kl_estimate(sums: dict[str, float], tokens: dict[str, int], per_clip: int, skipped: dict[str, str],
                 settings: dict) -> KLEstimate:
    """The estimate from each clip's summed log-ratio and token count (every clip has ``per_clip`` completions)."""
    clips = list(sums)
    means = [sums[c] / per_clip for c in clips]
    per_completion = sum(means) / len(clips)
    total_tokens = sum(tokens.values())        # > 0: a completion holds at least its first token
    per_token = sum(sums.values()) / total_tokens
    mean_tokens = total_tokens / len(clips)
    # the ratio's linearisation: clip c contributes (S_c − r T_c) / mean T
    residuals = [(sums[c] - per_token * tokens[c]) / mean_tokens for c in clips]
    return KLEstimate(per_completion, per_token, _standard_error(means), _standard_error(residuals),
                      completions=per_clip * len(clips), tokens=total_tokens,
                      per_clip=dict(zip(clips, means)), skipped_reasons=skipped, settings=settings)


def _standard_error(values: list[float]) -> float | None:
    """Standard error of the mean of ``values`` (sample variance); None below two values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def _log_ratio(logprobs: torch.Tensor, start_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per completion, Σ_t (log π − log π_start) over the tokens ``mask`` keeps (up to and including the stop
    token), (N,) in float64 on the CPU; padding is excluded by selection, not multiplied by 0 (no 0 · inf).
    The start's scores come from its own prepared prompt: a model whose template differs is still asked
    the clip's question its own way."""
    difference = logprobs.double().cpu() - start_logprobs.double().cpu()     # (N, C)
    return torch.where(mask.bool().cpu(), difference, 0.0).sum(dim=1)


def _sample(policy: Policy, batch: PreparedBatch, per_clip: int, sampling: SamplingConfig, seed: int,
            index: int) -> Completions:
    """``per_clip`` completions a clip, drawn under the generator state of (``seed``, batch ``index``)."""
    with _seeded(policy, seed * 1_000_003 + index):
        return policy.generate(batch, num_return_sequences=per_clip, sampling=sampling)


@contextmanager
def _seeded(policy: Policy, seed: int) -> Iterator[None]:
    """torch's global generators (the CPU's and the policy's GPU's) seeded inside, restored after."""
    device = torch.device(placement(policy.module)["device"] or "cpu")
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _batches(policy: Policy, samples: list[Sample], prompt: str, batch_size: int, media: MediaCache | None,
             skipped: dict[str, str], progress: Progress | None) -> Iterator[tuple[int, LoadedClips]]:
    """Batch index and the decoded clips of each ``batch_size`` slice of ``samples`` that kept any; each
    failed clip's reason goes into ``skipped`` (by id). ``progress(clips done, clips)`` after each slice."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    repeated = sorted(clip for clip, n in Counter(s.id for s in samples).items() if n > 1)
    if repeated:
        raise ValueError(f"clip ids must be unique (results are keyed by id); repeated: {repeated[:5]}")
    loader = ClipLoader.for_policy(policy, prompt=prompt, cache=media)
    for index, start in enumerate(range(0, len(samples), batch_size)):
        loaded = loader.load_many(samples[start:start + batch_size])
        skipped.update({clip: str(error) for clip, error in loaded.failures.items()})
        if loaded.clips:
            yield index, loaded
        if progress is not None:
            progress(min(start + batch_size, len(samples)), len(samples))


def _check_labelled(samples: list[Sample], labels: LabelSet) -> None:
    """Every clip has a label of ``labels`` (otherwise no answer could be right, silently)."""
    unlabelled = [s.id for s in samples if not s.label]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} clip(s) have no label (e.g. {unlabelled[0]!r}); pass@k needs labels")
    outside = sorted({s.label for s in samples} - set(labels.labels))
    if outside:
        raise ValueError(f"labels {outside} are not in the {labels.name} label set {list(labels.labels)}")


def _check_comparable(policy: Policy, start_policy: Policy) -> None:
    """Both models read the same token ids: the completions of one are scored by the other."""
    if policy.family != start_policy.family:
        raise ValueError(f"the policy ({policy.family}) and its start ({start_policy.family}) are of different "
                         "families; their token ids cannot be compared")
    if policy.tokenizer.get_vocab() != start_policy.tokenizer.get_vocab():
        raise ValueError("the policy's and its start's tokenizers differ; their token ids cannot be compared")


def _skip_note(skipped: dict[str, str]) -> str:
    if not skipped:
        return "no clips given"
    clip, reason = next(iter(skipped.items()))
    return f"{len(skipped)} skipped, e.g. {clip}: {reason}"
