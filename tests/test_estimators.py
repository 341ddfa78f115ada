"""The estimators of sb3_vpg.estimators against numbers worked out by hand."""

import numpy as np
import pytest

from sb3_vpg.estimators import (
    episode_start_rows,
    generalized_advantages,
    mean_return_by_step,
    reward_to_go,
    steps_since_start,
    trajectory_returns,
)

# Time-major (4 steps, 3 envs). Env 0: episodes [1, 2] and [3, 4]. Env 1: one episode of 4 steps, still running.
# Env 2: four episodes of length 1 (the last one truncated: to the estimators, an end is an end).
REWARDS = np.array([[1.0, 1.0, 5.0], [2.0, 1.0, 6.0], [3.0, 1.0, 7.0], [4.0, 1.0, 8.0]])
EPISODE_STARTS = np.array([[1, 1, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=np.float32)
DONES = np.array([[0, 0, 1], [1, 0, 1], [0, 0, 1], [1, 0, 1]], dtype=np.float32)


def test_reward_to_go_by_hand() -> None:
    expected = np.array(
        [
            [1 + 0.5 * 2, 1 + 0.5 + 0.25 + 0.125, 5],
            [2, 1 + 0.5 + 0.25, 6],
            [3 + 0.5 * 4, 1 + 0.5, 7],
            [4, 1, 8],
        ]
    )
    np.testing.assert_allclose(reward_to_go(REWARDS, DONES, gamma=0.5), expected)


def test_trajectory_returns_count_from_the_first_step() -> None:
    # γ = 1: R(τ) = 1 + 2 = 3 and 3 + 4 = 7 for env 0; each length-1 episode of env 2 returns its only reward.
    np.testing.assert_allclose(
        trajectory_returns(REWARDS, EPISODE_STARTS, DONES, gamma=1.0)[:, [0, 2]], [[3, 5], [3, 6], [7, 7], [7, 8]]
    )
    # γ = 1/2, discounted from the episode's first step, the same number on every step: not the reward-to-go.
    np.testing.assert_allclose(
        trajectory_returns(REWARDS, EPISODE_STARTS, DONES, gamma=0.5)[:, [0, 2]], [[2, 5], [2, 6], [5, 7], [5, 8]]
    )


def test_episode_start_rows() -> None:
    np.testing.assert_array_equal(episode_start_rows(EPISODE_STARTS), [[0, 0, 0], [0, 0, 1], [2, 0, 2], [2, 0, 3]])


def test_generalized_advantages_by_hand() -> None:
    # One episode r = [1, 2], V = [0.5, 1.0], γ = 0.9, λ = 0.8, and nothing beyond its last step:
    # δ_1 = 2 − 1 = 1, A_1 = 1; δ_0 = 1 + 0.9 × 1 − 0.5 = 1.4, A_0 = 1.4 + 0.9 × 0.8 × 1 = 2.12.
    rewards, values, dones = np.array([[1.0], [2.0]]), np.array([[0.5], [1.0]]), np.array([[0.0], [1.0]])
    np.testing.assert_allclose(generalized_advantages(rewards, values, dones, 0.9, 0.8), [[2.12], [1.0]])
    # λ = 1 is the Monte-Carlo advantage, reward-to-go − V: (1 + 0.9 × 2) − 0.5 = 2.3 and 2 − 1 = 1.
    np.testing.assert_allclose(generalized_advantages(rewards, values, dones, 0.9, 1.0), [[2.3], [1.0]])
    # λ = 0 is the one-step TD error.
    np.testing.assert_allclose(generalized_advantages(rewards, values, dones, 0.9, 0.0), [[1.4], [1.0]])


@pytest.mark.parametrize("gae_lambda", [0.0, 0.7, 1.0])
def test_generalized_advantages_stop_at_episode_ends(gae_lambda: float) -> None:
    """Length-1 and truncated episodes: the advantage is r − V, nothing of the next episode leaks in."""
    values = np.full(REWARDS.shape, 0.25)
    advantages = generalized_advantages(REWARDS, values, DONES, 0.9, gae_lambda)
    np.testing.assert_allclose(advantages[:, 2], REWARDS[:, 2] - 0.25)
    np.testing.assert_allclose(advantages[1, 0], 2 - 0.25)


def test_steps_since_start() -> None:
    np.testing.assert_array_equal(steps_since_start(EPISODE_STARTS), [[0, 0, 0], [1, 1, 0], [0, 2, 0], [1, 3, 0]])


def test_mean_return_by_step_by_hand() -> None:
    """
    The complete episodes of env 0 ([1, 2] and [3, 4]) and env 2 (four of length 1, the last truncated), γ = 1:
    m = 6 episodes, rewards-to-go 3, 2 | 7, 4 | 5 | 6 | 7 | 8. At t = 0 every episode counts:
    b_0 = (3 + 7 + 5 + 6 + 7 + 8) / 6 = 6, the mean return. At t = 1 only env 0's two episodes are still running,
    the four others count 0: b_1 = (2 + 4) / 6 = 1, not the mean (3) of the two steps there.
    """
    to_go = reward_to_go(REWARDS, DONES, gamma=1.0)[:, [0, 2]].flatten()
    steps = steps_since_start(EPISODE_STARTS)[:, [0, 2]].flatten()
    np.testing.assert_allclose(mean_return_by_step(to_go, steps, n_episodes=6), [6.0, 1.0])
    # b_0 is the mean of R(τ) over the episodes, whatever their lengths.
    returns = trajectory_returns(REWARDS, EPISODE_STARTS, DONES, gamma=1.0)[:, [0, 2]]
    assert mean_return_by_step(to_go, steps, n_episodes=6)[0] == pytest.approx(returns[EPISODE_STARTS[:, [0, 2]] > 0].mean())
