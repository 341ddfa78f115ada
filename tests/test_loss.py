"""
VPG's loss on hand-built batches equals Eq. (4) computed by hand.

The env plays scripted episodes, its time limit truncates one of them, and one is carried over a rollout boundary.
With the action network zeroed and a learning rate of 0, π(a|s) = 1/2 for every step of every update, so Eq. (4),
Loss = −(1/m) Σ_i Σ_t log π(a_t|s_t) R(τ_i), is (ln 2 / m) Σ_i |τ_i| R(τ_i): a number to work out on paper.
"""

import math

import pytest
import torch as th
from gymnasium.wrappers import TimeLimit

from sb3_vpg import VPG
from tests.helpers_sb3 import StopAfterUpdates
from tests.scripted_episodes import ScriptedEpisodes

HORIZON = 4
# A ends after 3 steps; B would last 6 but the time limit truncates it after 4; C lasts 2; D is still running.
EPISODES = [[1.0, 2.0, 3.0], [0.5] * 6, [-1.0, 4.0], [1.0, 1.0, 1.0]]
LN2 = math.log(2)


def uniform_policy_model(gamma: float) -> VPG:
    model = VPG(
        "MlpPolicy",
        TimeLimit(ScriptedEpisodes(EPISODES), max_episode_steps=HORIZON),
        learning_rate=0.0,
        n_steps=5,
        gamma=gamma,
        policy_kwargs=dict(net_arch=[]),
        seed=0,
    )
    with th.no_grad():
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.zero_()
        # A value head far from zero: any bootstrapped value (SB3 adds γ·V at truncations) would change the loss.
        model.policy.value_net.bias.fill_(5.0)
    return model


@pytest.mark.parametrize(
    "gamma, first_update, second_update",
    [
        # Update 1: A (3 steps, R = 1 + 2 + 3 = 6); B's first 2 steps are carried over.
        # Update 2: B whole (4 steps, R = 4 × 0.5 = 2, truncated) and C (2 steps, R = −1 + 4 = 3); D's first step waits.
        (1.0, dict(loss=3 * 6 * LN2, m=1, mean=6.0, std=0.0), dict(loss=(4 * 2 + 2 * 3) * LN2 / 2, m=2, mean=2.5, std=0.5)),
        # γ = 1/2, discounted from each episode's first step: R(A) = 2.75, R(B) = 0.9375, R(C) = −1 + 4/2 = 1.
        (
            0.5,
            dict(loss=3 * 2.75 * LN2, m=1, mean=2.75, std=0.0),
            dict(loss=(4 * 0.9375 + 2 * 1) * LN2 / 2, m=2, mean=0.96875, std=0.03125),
        ),
    ],
)
def test_loss_is_eq4_by_hand(gamma: float, first_update: dict, second_update: dict) -> None:
    model = uniform_policy_model(gamma)
    observations = th.tensor([[0.0, episode, t] for episode in range(3) for t in range(4)], device=model.device)
    assert th.all(model.policy.predict_values(observations).abs() > 1.0)

    for steps, expected in ((5, first_update), (10, second_update)):
        model.learn(total_timesteps=5, reset_num_timesteps=steps == 5)
        assert model.num_timesteps == steps
        logged = model.logger.name_to_value
        assert logged["train/n_episodes"] == expected["m"]
        assert logged["train/policy_gradient_loss"] == pytest.approx(expected["loss"], rel=1e-6)
        assert logged["train/return_mean"] == pytest.approx(expected["mean"])
        assert logged["train/return_std"] == pytest.approx(expected["std"])
    # The parameters never moved (learning rate 0): the uniform policy behind the hand computation held throughout.
    assert th.all(model.policy.action_net.weight == 0)


def test_update_without_complete_episode_is_skipped() -> None:
    """An update in which no episode has ended takes no gradient step, and records that it skipped."""
    model = VPG("MlpPolicy", ScriptedEpisodes([[1.0] * 10]), n_steps=4, policy_kwargs=dict(net_arch=[8]), seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=8)
    assert model.logger.name_to_value["train/n_episodes"] == 0
    assert model.logger.name_to_value["train/n_skipped_updates"] == 2
    assert model._n_updates == 0
    assert all(th.equal(b, a) for b, a in zip(before, model.policy.parameters(), strict=True))
    # The 8 steps wait in the buffer; the episode ends 2 steps later and enters the next update whole (10 steps).
    model.learn(total_timesteps=4, reset_num_timesteps=False)
    assert model.logger.name_to_value["train/n_episodes"] == 1
    assert model.logger.name_to_value["train/return_mean"] == 10.0
    assert model._n_updates == 1


@pytest.mark.parametrize("max_grad_norm", [None, 0.01])
def test_gradient_is_clipped_only_when_asked(max_grad_norm: float | None) -> None:
    """With SGD at learning rate 1 the step is the gradient: its norm is train/grad_norm, or max_grad_norm if smaller."""
    model = VPG(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=1.0,
        n_episodes=2,
        max_grad_norm=max_grad_norm,
        policy_kwargs=dict(net_arch=[8], optimizer_class=th.optim.SGD),
        seed=0,
    )
    before = th.cat([p.detach().flatten() for p in model.policy.parameters()])
    model.learn(total_timesteps=10_000, callback=StopAfterUpdates(1))
    step = th.cat([p.detach().flatten() for p in model.policy.parameters()]) - before
    grad_norm = model.logger.name_to_value["train/grad_norm"]
    assert grad_norm > 1.0
    expected = grad_norm if max_grad_norm is None else max_grad_norm
    assert step.norm().item() == pytest.approx(expected, rel=1e-3)
