"""Loss variants against numbers computed by hand (see the comments for the arithmetic)."""

import math

import pytest
import torch

from r1omni.train.losses import group_advantages, k3_kl, masked_modality_loss, policy_loss

LOGP = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -1.0, -1.5]])
REF = torch.tensor([[-1.5, -1.0, -3.0], [-0.5, -2.0, -1.5]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
ADV = torch.tensor([1.0, -0.5])
# k3 per token: delta = ref - logp; exp(delta) - delta - 1
KL_ROW0 = [math.exp(-0.5) + 0.5 - 1, math.exp(1.0) - 2.0]        # 0.1065307, 0.7182818 (third masked)
KL_ROW1 = [0.0, math.exp(-1.0), 0.0]                              # 0, 0.3678794, 0
ROW0_SUM = -2.0 + 0.04 * sum(KL_ROW0)                             # policy term -A = -1 per token
ROW1_SUM = 1.5 + 0.04 * sum(KL_ROW1)                              # policy term +0.5 per token


def test_group_advantages_paper():
    adv = group_advantages(torch.tensor([2.0, 0.0, 1.0, 1.0]), num_generations=2)
    # group [2, 0]: mean 1, unbiased std sqrt(2); group [1, 1]: std 0 -> advantages 0
    expected = torch.tensor([1 / (math.sqrt(2) + 1e-4), -1 / (math.sqrt(2) + 1e-4), 0.0, 0.0])
    torch.testing.assert_close(adv, expected)


def test_group_advantages_unscaled_and_batch():
    rewards = torch.tensor([2.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(group_advantages(rewards, 2, scale="none"), torch.tensor([1.0, -1.0, 0.0, 0.0]))
    batch_std = rewards.std()                                    # sqrt(2/3)
    torch.testing.assert_close(group_advantages(rewards, 2, scale="batch"),
                               torch.tensor([1.0, -1.0, 0.0, 0.0]) / (batch_std + 1e-4))
    with pytest.raises(ValueError, match="num_generations >= 2"):
        group_advantages(torch.ones(3), 1)
    with pytest.raises(ValueError, match="G=4"):
        group_advantages(torch.ones(6), 4)


def test_k3_kl_values():
    torch.testing.assert_close(k3_kl(LOGP, REF)[0, :2], torch.tensor(KL_ROW0))
    assert (k3_kl(torch.randn(50), torch.randn(50)) >= 0).all()


def test_grpo_aggregation_with_kl():
    out = policy_loss(LOGP, ADV, MASK, ref_logp=REF, beta=0.04)
    expected = (ROW0_SUM / 2 + ROW1_SUM / 3) / 2                 # -0.2392993
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    assert out.kl == pytest.approx((sum(KL_ROW0) + sum(KL_ROW1)) / 5, abs=1e-6)
    assert out.clip_fraction == 0.0


def test_dapo_and_dr_grpo_aggregations():
    dapo = policy_loss(LOGP, ADV, MASK, ref_logp=REF, beta=0.04, aggregation="dapo")
    assert dapo.loss.item() == pytest.approx((ROW0_SUM + ROW1_SUM) / 5, abs=1e-6)
    dr = policy_loss(LOGP, ADV, MASK, ref_logp=REF, beta=0.04, aggregation="dr_grpo", max_completion_length=4)
    assert dr.loss.item() == pytest.approx((ROW0_SUM + ROW1_SUM) / (2 * 4), abs=1e-6)
    with pytest.raises(ValueError, match="max_completion_length"):
        policy_loss(LOGP, ADV, MASK, beta=0.0, aggregation="dr_grpo")


def test_beta_zero_needs_no_reference():
    out = policy_loss(LOGP, ADV, MASK, beta=0.0)
    assert out.loss.item() == pytest.approx((-1.0 + 0.5) / 2)    # per-sequence means -1 and +0.5
    assert out.kl == 0.0
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(LOGP, ADV, MASK, beta=0.04)


def test_single_update_gradient_is_the_policy_gradient():
    logp = LOGP.clone().requires_grad_(True)
    policy_loss(logp, ADV, MASK, beta=0.0).loss.backward()
    # d loss / d logp[i, t] = -A_i * mask[i, t] / len_i / N
    expected = torch.tensor([[-1.0 / 2 / 2, -1.0 / 2 / 2, 0.0], [0.5 / 3 / 2] * 3])
    torch.testing.assert_close(logp.grad, expected)


@pytest.mark.parametrize("advantage, eps_high, expected_loss", [
    (1.0, None, -1.2),     # ratio 1.5 clipped to 1.2 for a positive advantage
    (-1.0, None, 1.5),     # negative advantage: the pessimistic (unclipped) term wins
    (1.0, 0.6, -1.5),      # clip-higher (DAPO) leaves room up to 1.6
    (1.0, 0.2, -1.2),
])
def test_ppo_clipping(advantage, eps_high, expected_loss):
    logp = torch.zeros(1, 1)
    old = torch.full((1, 1), math.log(1 / 1.5))                   # ratio = 1.5
    out = policy_loss(logp, torch.tensor([advantage]), torch.ones(1, 1), old_logp=old, beta=0.0,
                      epsilon_low=0.2, epsilon_high=eps_high)
    assert out.loss.item() == pytest.approx(expected_loss, abs=1e-6)
    assert out.clip_fraction == (1.0 if eps_high in (None, 0.2) else 0.0)


def test_token_weights_scale_the_policy_term_only():
    weights = torch.tensor([[0.5, 2.0, 1.0], [1.0, 1.0, 0.0]])
    out = policy_loss(LOGP, ADV, MASK, ref_logp=REF, beta=0.04, token_weights=weights)
    # row 0: policy -1 per token weighted 0.5 and 2.0; row 1: +0.5 weighted 1, 1, 0
    row0 = -1.0 * 0.5 - 1.0 * 2.0 + 0.04 * sum(KL_ROW0)
    row1 = 0.5 + 0.5 + 0.0 + 0.04 * sum(KL_ROW1)
    assert out.loss.item() == pytest.approx((row0 / 2 + row1 / 3) / 2, abs=1e-6)


# -- the masked-modality (PAPO) term -----------------------------------------------------------------
# REF plays the log-probs under the clip without its video: KL_ROW0 / KL_ROW1 are the per-token k3 values.
GRPO_KL = (sum(KL_ROW0) / 2 + sum(KL_ROW1) / 3) / 2                  # per-sequence mean, then over rows


def test_masked_term_is_zero_when_the_answer_ignores_the_modality():
    logp = LOGP.clone().requires_grad_(True)
    out = masked_modality_loss(logp, {"video": LOGP.clone()}, MASK, weight=0.5, entropy_weight=0.0, kl_cap=None)
    assert out.loss.item() == 0.0 and out.kl == {"video": 0.0} and out.capped_fraction == 0.0
    out.loss.backward()
    assert not logp.grad.any()                                       # no push at all


def test_masked_term_by_hand():
    out = masked_modality_loss(LOGP, {"video": REF}, MASK, weight=0.5, entropy_weight=0.03, kl_cap=None)
    entropy = (-(-1.0 - 2.0) / 2 - (-0.5 - 1.0 - 1.5) / 3) / 2        # -logp, per-sequence means: 1.5 and 1.0
    assert out.loss.item() == pytest.approx(-0.5 * GRPO_KL + 0.03 * entropy, abs=1e-6)
    assert out.kl["video"] == pytest.approx((sum(KL_ROW0) + sum(KL_ROW1)) / 5, abs=1e-6)
    assert out.entropy == pytest.approx((3.0 + 3.0) / 5)             # token mean of -logp
    assert out.masked_entropy["video"] == pytest.approx((1.5 + 1.0 + 0.5 + 2.0 + 1.5) / 5)
    # Two modalities: the mean of the two terms; an identical one halves the perception part.
    both = masked_modality_loss(LOGP, {"video": REF, "audio": LOGP}, MASK, weight=0.5, kl_cap=None)
    assert both.loss.item() == pytest.approx(-0.5 * GRPO_KL / 2, abs=1e-6) and both.kl["audio"] == 0.0


def test_the_cap_bounds_what_kl_hacking_earns():
    """Tokens whose KL exceeds the cap (0.718 and 0.368 here) count as the cap and push no further; the
    entropy penalty pulls every token's log-prob up against the KL's push down."""
    logp = LOGP.clone().requires_grad_(True)
    out = masked_modality_loss(logp, {"video": REF}, MASK, weight=1.0, entropy_weight=0.0, kl_cap=0.2)
    assert out.loss.item() == pytest.approx(-((KL_ROW0[0] + 0.2) / 2 + 0.2 / 3) / 2, abs=1e-6)
    assert out.capped_fraction == pytest.approx(2 / 5)
    out.loss.backward()
    assert logp.grad[0, 1] == 0 and logp.grad[1, 1] == 0 and logp.grad[0, 0] != 0
    # Uncapped, row 0's second token (its own log-prob -2 below the masked -1: the hacking branch, where the
    # KL grows without bound) is pushed further down by the KL and up by the entropy penalty.
    logp = LOGP.clone().requires_grad_(True)
    masked_modality_loss(logp, {"video": REF}, MASK, weight=1.0, entropy_weight=0.0).loss.backward()
    kl_push = logp.grad[0, 1].item()
    assert kl_push > 0                                                  # gradient descent lowers logp
    logp.grad = None
    masked_modality_loss(logp, {"video": REF}, MASK, weight=0.0, entropy_weight=0.03).loss.backward()
    assert logp.grad[0, 1].item() == pytest.approx(-0.03 / 2 / 2)       # d(-logp mean)/d logp: raises it
    with pytest.raises(ValueError, match="at least one removed modality"):
        masked_modality_loss(LOGP, {}, MASK, weight=1.0)
