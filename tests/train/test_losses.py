"""Loss variants against numbers computed by hand (see the comments for the arithmetic)."""

import math

import pytest
import torch

from r1omni.train.losses import group_advantages, k3_kl, policy_loss

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
