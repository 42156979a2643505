"""GRPO advantages and policy losses, each variant a few lines, each unit-tested by hand.

The paper-faithful setting (R1-Omni = TRL 0.14 GRPO) is the default: group-normalised advantages
``(r - mean_G) / (std_G + 1e-4)`` with the unbiased std, one update per rollout (the ratio is
``exp(logp - logp.detach())`` = 1 with the policy gradient), the k3 KL to the reference with
β = 0.04, and the per-sequence mean ("grpo" aggregation). Also offered:

* PPO-style clipping with several updates per rollout (``old_logp`` from the rollout policy,
  ``epsilon_low`` / ``epsilon_high``; DAPO's clip-higher sets ``epsilon_high`` > ``epsilon_low``);
* "dapo": token-level mean over every completion token of the batch;
* "dr_grpo": the sum divided by a constant (rows × max completion length), with unscaled
  advantages (``scale="none"``), per Dr. GRPO;
* β = 0: no reference model and no KL term;
* :func:`completion_nll`: the supervised loss, the mean negative log-likelihood of target completions, that
  SFT and the language phase minimise;
* :func:`masked_modality_loss`, off unless asked: PAPO's implicit perception term for omni clips, the
  KL between the policy given the whole clip and given it without a modality, maximised, with an
  entropy penalty and a per-token cap against KL hacking.

Shapes: N rows (B clips × G completions, rows of a clip contiguous), C completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from r1omni.models import ClipInput, Policy

__all__ = ["group_advantages", "k3_kl", "aggregate", "policy_loss", "LossOutput", "masked_modality_loss",
           "MaskedModalityOutput", "completion_nll", "AGGREGATIONS", "ADVANTAGE_SCALES"]

AGGREGATIONS = ("grpo", "dapo", "dr_grpo")
ADVANTAGE_SCALES = ("group", "batch", "none")


def group_advantages(rewards: torch.Tensor, num_generations: int, scale: str = "group",
                     eps: float = 1e-4) -> torch.Tensor:
    """Advantages of N = B*G rewards, groups of G contiguous rows.

    ``scale="group"`` (paper): (r - mean_G) / (std_G + eps); ``"batch"``: divide by the batch std;
    ``"none"`` (Dr. GRPO): r - mean_G. std is the unbiased estimate, as in TRL 0.14.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"scale must be one of {ADVANTAGE_SCALES}, got {scale!r}")
    if rewards.ndim != 1 or rewards.numel() % num_generations:
        raise ValueError(f"rewards must be (B*G,) with G={num_generations}, got shape {tuple(rewards.shape)}")
    if num_generations < 2:
        raise ValueError("GRPO needs num_generations >= 2 (a group of one has no relative advantage)")
    grouped = rewards.view(-1, num_generations)                              # (B, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)                    # (B, G)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)         # (B, G)
    elif scale == "batch":
        centred = centred / (rewards.std() + eps)
    return centred.reshape(-1)                                               # (N,)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π || π_ref): exp(ref - logp) - (ref - logp) - 1 >= 0."""
    delta = ref_logp - logp                                                  # (N, C)
    return torch.exp(delta) - delta - 1                                      # (N, C)


def aggregate(values: torch.Tensor, mask: torch.Tensor, aggregation: str = "grpo",
              max_completion_length: int | None = None) -> torch.Tensor:
    """Per-token ``values`` (N, C) over the completion tokens ``mask`` (N, C, float) -> one scalar."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if aggregation == "grpo":   # mean over each sequence, then over sequences
        return ((values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    if aggregation == "dapo":   # mean over every completion token of the batch
        return (values * mask).sum() / mask.sum().clamp(min=1)
    if max_completion_length is None:
        raise ValueError("aggregation 'dr_grpo' needs max_completion_length (the constant normaliser)")
    return (values * mask).sum() / (values.shape[0] * max_completion_length)


@dataclass
class LossOutput:
    loss: torch.Tensor            # scalar, to backpropagate
    kl: float                     # mean per-token KL over completion tokens (0 when β = 0)
    clip_fraction: float          # share of completion tokens whose ratio lies outside the clip range
    policy_term: float            # the loss without the KL part


def policy_loss(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                old_logp: torch.Tensor | None = None, ref_logp: torch.Tensor | None = None,
                beta: float = 0.04, epsilon_low: float = 0.2, epsilon_high: float | None = None,
                aggregation: str = "grpo", max_completion_length: int | None = None,
                token_weights: torch.Tensor | None = None) -> LossOutput:
    """The GRPO objective (to minimise) for one batch of completions.

    ``old_logp`` None means one update per rollout: the ratio is exp(logp - logp.detach()), whose
    value is 1 and whose gradient is the policy gradient, so clipping never fires (paper setting).
    ``token_weights`` (N, C) multiply the policy term per token: the truncated importance weights
    that correct for a sampler (e.g. vLLM) whose probabilities differ from the trainer's.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (the reference model's log-probs); set beta=0 to drop the KL")
    mask = mask.to(logp.dtype)                                               # (N, C)
    old = logp.detach() if old_logp is None else old_logp                    # (N, C)
    ratio = torch.exp(logp - old)                                            # (N, C)
    high = epsilon_low if epsilon_high is None else epsilon_high
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + high)                  # (N, C)
    adv = advantages[:, None]                                                # (N, 1)
    policy_per_token = -torch.min(ratio * adv, clipped * adv)                # (N, C)
    if token_weights is not None:
        policy_per_token = policy_per_token * token_weights                  # (N, C)
    per_token = policy_per_token
    kl_per_token = torch.zeros_like(logp)
    if beta > 0:
        kl_per_token = k3_kl(logp, ref_logp)                                 # (N, C)
        per_token = per_token + beta * kl_per_token

    loss = aggregate(per_token, mask, aggregation, max_completion_length)
    token_count = mask.sum().clamp(min=1)
    was_clipped = ((ratio - clipped).abs() > 0).to(mask.dtype) * mask
    return LossOutput(
        loss=loss,
        kl=float((kl_per_token.detach() * mask).sum() / token_count),
        clip_fraction=float(was_clipped.sum() / token_count),
        policy_term=float(aggregate(policy_per_token.detach(), mask, aggregation, max_completion_length)),
    )


@dataclass
class MaskedModalityOutput:
    loss: torch.Tensor            # scalar to add to the GRPO loss: -weight * capped KL + entropy_weight * entropy
    kl: dict[str, float]          # per removed modality: mean per-token KL (uncapped) over completion tokens
    masked_entropy: dict[str, float]  # per removed modality: entropy estimate of the masked-input policy
    entropy: float                # entropy estimate of the full-input policy (-mean log-prob of its tokens)
    capped_fraction: float        # share of (token, modality) KL values above the cap


def masked_modality_loss(logp: torch.Tensor, masked_logp: dict[str, torch.Tensor], mask: torch.Tensor,
                         weight: float, entropy_weight: float = 0.0, kl_cap: float | None = None,
                         aggregation: str = "grpo", max_completion_length: int | None = None) -> MaskedModalityOutput:
    """PAPO's implicit perception loss (arXiv 2507.06448) for omni clips, to add to the GRPO loss.

    For each removed modality m, the k3 estimate of KL(π(·|clip) ‖ π(·|clip without m)) per completion token,
    from the rollout's own completions: ``logp`` (N, C) under the whole clip, with gradient, and
    ``masked_logp[m]`` (N, C) under the clip without m, computed once per rollout without gradient (PAPO's
    default). The loss *subtracts* ``weight`` times its mean over the modalities: a policy whose answer does
    not depend on m has KL 0 there and gets no push from it; one that uses m is pushed to use it more.

    Against KL hacking: with the masked log-probs fixed, the KL grows without bound when the policy makes its
    own sampled tokens improbable (logp far below the masked one), i.e. by degenerating rather than by
    perceiving. Two guards act on exactly that: the entropy estimate ``-logp`` of the full-input policy is
    penalised with ``entropy_weight`` (PAPO's entropy loss; its second, masked-input entropy would need a
    masked forward with gradient, which PAPO skips by default too, so it is only logged here), and each
    token's KL is capped at ``kl_cap`` (PAPO's clipping option), beyond which the term has no gradient.
    """
    if not masked_logp:
        raise ValueError("masked_logp must hold the log-probs of at least one removed modality")
    mask = mask.to(logp.dtype)                                               # (N, C)
    token_count = mask.sum().clamp(min=1)
    kls, capped, masked_entropy, above = {}, [], {}, 0.0
    for modality, masked in masked_logp.items():
        kl = k3_kl(logp, masked)                                             # (N, C)
        kls[modality] = float((kl.detach() * mask).sum() / token_count)
        masked_entropy[modality] = float((-masked * mask).sum() / token_count)
        if kl_cap is not None:
            above += float(((kl.detach() > kl_cap).to(mask.dtype) * mask).sum() / token_count)
            kl = kl.clamp(max=kl_cap)                                        # (N, C)
        capped.append(aggregate(kl, mask, aggregation, max_completion_length))
    perception = torch.stack(capped).mean()
    entropy = aggregate(-logp, mask, aggregation, max_completion_length)
    full_entropy = float((-logp.detach() * mask).sum() / token_count)
    return MaskedModalityOutput(loss=-weight * perception + entropy_weight * entropy, kl=kls,
                                masked_entropy=masked_entropy, entropy=full_entropy,
                                capped_fraction=above / len(masked_logp))


def completion_nll(policy: Policy, clips: list[ClipInput], targets: list[str], device: torch.device | str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mean negative log-likelihood of the targets' tokens given their clips (every token of the batch
    weighs alike), with the token mask (B, C) and the target ids (B, C). Through the policy's
    ``token_logprobs``, so every family trains alike; the caller sets autocast."""
    batch = policy.prepare(clips).to(device)
    ids, mask = policy.encode_completions(targets)
    ids, mask = ids.to(device), mask.to(device)                                        # (B, C)
    logp = policy.token_logprobs(batch, ids, torch.arange(len(clips), device=device))   # (B, C)
    mask = mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp(min=1), mask, ids
