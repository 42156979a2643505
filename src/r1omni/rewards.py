"""Verifiable rewards: pure batch functions ``(completions, **columns) -> list[float]``.

R = R_acc + R_format, as in R1-Omni. Both are built on :func:`r1omni.template.parse_completion`,
the same parser the metrics use, so "correct" means the same thing in training and evaluation.

Beyond the paper, two verifiable rewards on the ``<think>`` text (R1-Omni names hallucinated
reasoning as a limitation; its reward has no reason to make the reasoning true):

* ``grounding_reward``: the cue claims of the reasoning (:mod:`r1omni.claims`) held against the
  clip's cues (the benchmark's true cues, or cues measured on the clip): (supported − contradicted) /
  checkable claims, over distinct claims, in [-1, 1]. A completion with no checkable claim gets 0,
  so saying nothing never beats saying true things; a cue claimed at two levels counts every claim
  of it as contradicted, so claiming every level at once scores -1.
* ``consistency_reward``: 1.0 when the emotion the reasoning concludes with is the answer's label.

Which variant reproduces the paper:

* ``format_reward(..., paper_regex=True)`` is the released check (``re.fullmatch`` of
  ``<think>.*?</think>\\s*<answer>.*?</answer>``); it also accepts repeated or nested tags and
  empty fields. The default (``paper_regex=False``) is r1omni's strict check: exactly one
  non-empty think block and one non-empty answer block, no tags inside either.
* ``accuracy_reward(..., normalize=False)`` is the released exact match of the stripped
  ``<answer>`` content (whole text when there is no tag) to the label word: ``Sad`` or
  ``sadness`` earn 0. ``normalize=True`` maps synonyms and case to canonical labels first.

No I/O, no environment variables, no prints. Columns other than those named are ignored, so a
trainer may pass every dataset column to every reward.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from r1omni.claims import CONTRADICTED, SUPPORTED, check_claims, cue_levels
from r1omni.labels import concluded_label
from r1omni.template import parse_completion

__all__ = ["format_reward", "accuracy_reward", "grounding_reward", "consistency_reward", "total_reward",
           "REWARD_FUNCTIONS", "RewardFunction", "WeightedReward", "resolve_rewards"]

RewardFunction = Callable[..., list[float]]


def _text(completion) -> str:
    """Completions may be plain strings or chat messages ``[{"role": "assistant", "content": str}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else ""
    return ""


def format_reward(completions: Sequence, paper_regex: bool = False, **columns) -> list[float]:
    """1.0 when the whole completion is ``<think>…</think>`` then ``<answer>…</answer>``, else 0.0.

    >>> format_reward(["<think>smile</think> <answer>happy</answer>", "happy"])
    [1.0, 0.0]
    >>> format_reward(["<think></think><answer>happy</answer>"]), format_reward(["<think></think><answer>happy</answer>"], paper_regex=True)
    ([0.0], [1.0])
    """
    rewards = []
    for completion in completions:
        parsed = parse_completion(_text(completion))
        rewards.append(1.0 if (parsed.paper_format_ok if paper_regex else parsed.format_ok) else 0.0)
    return rewards


def accuracy_reward(completions: Sequence, label: Sequence[str | None], normalize: bool = False,
                    **columns) -> list[float]:
    """1.0 when the answer names the label, else 0.0 (also 0.0 for unlabelled rows).

    >>> accuracy_reward(["<think>x</think><answer> sad </answer>", "<answer>Sadness</answer>"], ["sad", "sad"])
    [1.0, 0.0]
    >>> accuracy_reward(["<answer>Sadness</answer>"], ["sad"], normalize=True)
    [1.0]
    """
    if len(label) != len(completions):
        raise ValueError(f"accuracy_reward: {len(completions)} completions but {len(label)} labels")
    rewards = []
    for completion, gold in zip(completions, label):
        if gold is None:
            rewards.append(0.0)
            continue
        parsed = parse_completion(_text(completion))
        if normalize:
            hit = parsed.label is not None and parsed.label == parse_completion(gold).label
        else:
            hit = parsed.answer == gold.strip()
        rewards.append(1.0 if hit else 0.0)
    return rewards


def grounding_reward(completions: Sequence, cues: Sequence[Mapping | None] | None = None, **columns) -> list[float]:
    """How true the reasoning's cue claims are of the clip, in [-1, 1] (0 when nothing is checkable).

    ``cues`` holds one clip's cue values per completion (``{"face": {...}, "voice": {...}}`` as in
    the benchmark's ``meta["cues"]``, or measured), None where unknown.

    >>> think = "<think>{}</think><answer>happy</answer>"
    >>> cues = [{"voice": {"pitch": 0.7}}] * 4
    >>> grounding_reward([think.format("The pitch is high."), think.format("The pitch is low."),
    ...                   think.format("She smiles."), think.format("The pitch is high, the pitch is low.")], cues)
    [1.0, -1.0, 0.0, -1.0]
    """
    cues = cues if cues is not None else [None] * len(completions)
    if len(cues) != len(completions):
        raise ValueError(f"grounding_reward: {len(completions)} completions but {len(cues)} cue rows")
    rewards = []
    for completion, clip_cues in zip(completions, cues):
        if not clip_cues:
            rewards.append(0.0)
            continue
        checks = check_claims(parse_completion(_text(completion)).think or "", cue_levels(clip_cues))
        distinct = {(c.cue, c.claimed): c.verdict for c in checks if c.verdict in (SUPPORTED, CONTRADICTED)}
        claimed_levels: dict[str, set[str]] = {}
        for cue, level in distinct:
            claimed_levels.setdefault(cue, set()).add(level)
        verdicts = [CONTRADICTED if len(claimed_levels[cue]) > 1 else verdict
                    for (cue, _), verdict in distinct.items()]
        supported = sum(v == SUPPORTED for v in verdicts)
        rewards.append((2 * supported - len(verdicts)) / len(verdicts) if verdicts else 0.0)
    return rewards


def consistency_reward(completions: Sequence, **columns) -> list[float]:
    """1.0 when the emotion the reasoning argues for (its last emotion word) is the answer's, else 0.0.

    >>> consistency_reward(["<think>The face shows anger.</think><answer>angry</answer>",
    ...                     "<think>The facial cues suggest surprise.</think><answer>sad</answer>"])
    [1.0, 0.0]
    """
    rewards = []
    for completion in completions:
        parsed = parse_completion(_text(completion))
        argued = concluded_label(parsed.think) if parsed.think else None
        rewards.append(1.0 if argued is not None and argued == parsed.label else 0.0)
    return rewards


def total_reward(completions: Sequence, label: Sequence[str | None], normalize: bool = False,
                 paper_regex: bool = False, **columns) -> list[float]:
    """R = R_acc + R_format, in {0, 1, 2}."""
    acc = accuracy_reward(completions, label, normalize=normalize)
    fmt = format_reward(completions, paper_regex=paper_regex)
    return [a + f for a, f in zip(acc, fmt)]


# Name -> function, for training configs (``rewards: {accuracy: 1.0, format: 1.0}``).
REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "grounding": grounding_reward,
    "consistency": consistency_reward,
}


@dataclass(frozen=True)
class WeightedReward:
    """One term of R: a name (for logs), its weight, and the callable with its options bound."""

    name: str
    weight: float
    function: RewardFunction


def resolve_rewards(weights: Mapping[str, float], *, accuracy_normalize: bool = False,
                    format_paper_regex: bool = False,
                    extra: Mapping[str, RewardFunction] | None = None) -> list[WeightedReward]:
    """Turn a config's ``{name: weight}`` into bound callables, once, before training starts.

    Names come from :data:`REWARD_FUNCTIONS` or from ``extra`` (a user's own rewards with TRL's
    contract ``(completions, **columns) -> list[float]``; they may not reuse a built-in name). The
    built-ins' options are bound here, so a training loop calls every term the same way.

    >>> [(r.name, r.weight) for r in resolve_rewards({"accuracy": 1.0, "format": 0.5})]
    [('accuracy', 1.0), ('format', 0.5)]
    >>> resolve_rewards({"accuracy": 1.0}, accuracy_normalize=True)[0].function(["<answer>Sadness</answer>"],
    ...                                                                        label=["sad"])
    [1.0]
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(REWARD_FUNCTIONS))
    if clash:
        raise ValueError(f"reward name(s) {clash} are built in; give your own reward another name")
    if not weights:
        raise ValueError("rewards must name at least one reward function")
    unknown = sorted(set(weights) - set(REWARD_FUNCTIONS) - set(extra))
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; built in: {sorted(REWARD_FUNCTIONS)}"
                         + (f", passed in: {sorted(extra)}" if extra else
                            " (pass your own as reward_functions={name: callable})"))
    options = {"accuracy": {"normalize": accuracy_normalize}, "format": {"paper_regex": format_paper_regex}}
    bound = {name: functools.partial(function, **options.get(name, {})) for name, function in REWARD_FUNCTIONS.items()}
    return [WeightedReward(name, float(weight), bound.get(name) or extra[name]) for name, weight in weights.items()]
