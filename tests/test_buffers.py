"""
The contract of EpisodeRolloutBuffer and DictEpisodeRolloutBuffer, driven step by step with hand-made data: SB3's
``add`` order, whole episodes only, the reward-to-go by hand, what is dropped and counted, the memory of running
episodes, and a clear error from every inherited method that has no meaning here.
"""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer

from sb3_vpg.buffers import BLOCK_ROWS, DictEpisodeRolloutBuffer, EpisodeRolloutBuffer
from sb3_vpg.estimators import estimator_for
from sb3_vpg.type_aliases import DictEpisodeRolloutBufferSamples, EpisodeRolloutBufferSamples

OBSERVATIONS = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
ACTIONS = spaces.Discrete(3)
PLAIN = estimator_for(reward_to_go=False, baseline=None)


def buffer(n_envs: int = 2, gamma: float = 0.5, buffer_size: int = 4, **kwargs) -> EpisodeRolloutBuffer:
    return EpisodeRolloutBuffer(buffer_size, OBSERVATIONS, ACTIONS, device="cpu", gamma=gamma, n_envs=n_envs, **kwargs)


def add(rollout: EpisodeRolloutBuffer, step: int, rewards: list, starts: list, dones: list) -> None:
    """One step of every env; observation (env, step), action env % 3."""
    n_envs = len(rewards)
    obs = np.array([[env, step] for env in range(n_envs)], dtype=np.float32)
    rollout.add(obs, np.arange(n_envs) % 3, np.array(rewards), np.array(starts), done=np.array(dones))


def test_episodes_move_whole_to_the_batch_with_their_reward_to_go() -> None:
    """
    Env 0 plays [1, 2] then starts an episode; env 1 plays [4, 8, 16]. Episodes enter the batch as they end, in
    order; G_t with γ = 1/2 by hand: [1 + 2/2, 2] and [4 + 8/2 + 16/4, 8 + 16/2, 16].
    """
    rollout = buffer()
    add(rollout, 0, [1, 4], [1, 1], [0, 0])
    add(rollout, 1, [2, 8], [0, 0], [1, 0])
    assert (rollout.pos, rollout.n_episodes, rollout.n_running_steps) == (2, 1, 2)
    add(rollout, 2, [7, 16], [1, 0], [0, 1])
    assert (rollout.pos, rollout.n_episodes, rollout.n_running_steps) == (5, 2, 1)
    np.testing.assert_array_equal(rollout.observations[:5], [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]])
    np.testing.assert_array_equal(rollout.actions[:5, 0], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(rollout.rewards[:5], [1, 2, 4, 8, 16])
    np.testing.assert_array_equal(rollout.episode_starts[:5], [1, 0, 1, 0, 0])
    np.testing.assert_allclose(rollout.returns[:5], [2, 2, 12, 16, 16])
    np.testing.assert_allclose(rollout.episode_returns, [2, 12])


def test_get_hands_out_the_batch_after_compute_advantages_in_chunks() -> None:
    rollout = buffer(gamma=1.0)
    add(rollout, 0, [1, 4], [1, 1], [0, 0])
    add(rollout, 1, [2, 8], [0, 0], [1, 1])
    with pytest.raises(RuntimeError, match=r"call compute_advantages\(estimator, values\) first"):
        next(rollout.get())
    rollout.compute_advantages(PLAIN)
    chunks = list(rollout.get(batch_size=3))
    assert [len(chunk.actions) for chunk in chunks] == [3, 1]
    assert all(isinstance(chunk, EpisodeRolloutBufferSamples) for chunk in chunks)
    (whole,) = rollout.get()
    np.testing.assert_array_equal(whole.advantages.cpu().numpy(), [3, 3, 12, 12])  # R(τ) on every step: Eq. (4)
    np.testing.assert_array_equal(whole.returns.cpu().numpy(), [3, 2, 12, 8])
    assert whole.actions.dtype == th.float32 and whole.actions.shape == (4, 1)
    # A new step changes the batch: its weights must be computed again.
    add(rollout, 2, [1, 1], [1, 1], [1, 1])
    with pytest.raises(RuntimeError, match="compute_advantages"):
        next(rollout.get())


def test_discard_batch_keeps_the_running_episodes() -> None:
    rollout = buffer(gamma=1.0)
    add(rollout, 0, [1, 4], [1, 1], [1, 0])
    rollout.discard_batch()
    assert (rollout.size(), rollout.n_episodes, rollout.n_running_steps) == (0, 0, 1)
    add(rollout, 1, [5, 6], [1, 0], [1, 1])
    np.testing.assert_array_equal(rollout.observations[: rollout.pos], [[0, 1], [1, 0], [1, 1]])
    np.testing.assert_allclose(rollout.returns[: rollout.pos], [5, 10, 6])


def test_an_episode_cut_by_a_reset_is_dropped_whole_and_counted() -> None:
    """A step that starts an episode while one runs (its env was reset): the running one is dropped, not spliced."""
    rollout = buffer(gamma=1.0)
    add(rollout, 0, [1, 1], [1, 1], [0, 0])
    add(rollout, 1, [1, 1], [0, 0], [0, 0])
    add(rollout, 2, [5, 5], [1, 1], [1, 0])  # both envs reset: env 0's new episode lasts 1 step
    assert (rollout.n_dropped_episodes, rollout.n_episodes, rollout.n_running_steps) == (2, 1, 1)
    np.testing.assert_array_equal(rollout.observations[: rollout.pos], [[0, 2]])
    add(rollout, 3, [1, 1], [1, 0], [0, 1])
    np.testing.assert_array_equal(rollout.observations[: rollout.pos], [[0, 2], [1, 2], [1, 3]])
    np.testing.assert_allclose(rollout.returns[: rollout.pos], [5, 6, 1])


def test_steps_without_their_episode_start_are_not_stored() -> None:
    """After load or set_env without a reset, the first steps belong to episodes whose start is lost: dropped."""
    rollout = buffer(gamma=1.0)
    add(rollout, 0, [1, 1], [0, 0], [0, 1])  # env 1's episode ends: dropped; env 0's goes on, unstored
    assert (rollout.n_dropped_episodes, rollout.n_running_steps, rollout.pos) == (1, 0, 0)
    add(rollout, 1, [1, 3], [0, 1], [1, 1])  # env 0's ends (dropped), env 1 plays a whole 1-step episode
    assert (rollout.n_dropped_episodes, rollout.n_episodes) == (2, 1)
    np.testing.assert_array_equal(rollout.observations[: rollout.pos], [[1, 1]])


def test_running_episodes_hold_their_own_steps_only() -> None:
    """
    One env running a 2,000-step episode among seven that end every 2 steps: the running episodes hold 32 blocks of
    64 steps for the long one and one block for each short one; the pool of blocks grows (doubling, from one block per
    env) to 64 blocks, 4,096 steps, where a window as old as the oldest episode would hold 8 × 2,000.
    """
    rollout = buffer(n_envs=8, gamma=1.0, buffer_size=4)
    for step in range(2000):
        short = step % 2
        add(rollout, step, [1.0] * 8, [step == 0] + [not short] * 7, [step == 1999] + [bool(short)] * 7)
        if step == 1998:
            assert rollout.n_running_steps == 1999 + 7
        if step % 100 == 99 and step < 1999:
            rollout.discard_batch()  # as an update does
    assert rollout.n_episodes == 50 * 7 + 1  # the short episodes of the last 100 steps, and the long one, whole
    assert rollout.n_running_steps == 0
    assert rollout._pool.n_blocks * BLOCK_ROWS == 4096  # the running episodes' store, after its peak


def test_episode_longer_than_max_episode_steps_stops_before_storing_anything() -> None:
    rollout = buffer(max_episode_steps=2)
    add(rollout, 0, [1, 1], [1, 1], [0, 0])
    add(rollout, 1, [1, 1], [0, 0], [0, 0])
    with pytest.raises(RuntimeError, match="env 0 has lasted more than max_episode_steps=2"):
        add(rollout, 2, [1, 1], [0, 0], [0, 0])
    assert rollout.n_running_steps == 4


def test_values_and_log_probs_are_not_taken() -> None:
    """SB3's ``add`` order is kept, but V(s_t) and log π(a_t|s_t) are computed at update time: passing them is refused."""
    rollout = buffer()
    obs, action = np.zeros((2, 2), dtype=np.float32), np.zeros(2)
    with pytest.raises(ValueError, match="value and log_prob must be None"):
        rollout.add(obs, action, np.zeros(2), np.ones(2), th.zeros(2), th.zeros(2), done=np.zeros(2))
    with pytest.raises(TypeError, match="done"):
        rollout.add(obs, action, np.zeros(2), np.ones(2))


def test_inherited_methods_work_or_say_why_not() -> None:
    rollout = buffer(gamma=1.0)
    assert isinstance(rollout, RolloutBuffer)
    with pytest.raises(NotImplementedError, match="bootstraps nothing"):
        rollout.compute_returns_and_advantage(th.zeros(2), np.zeros(2))
    with pytest.raises(NotImplementedError, match=r"add\(\.\.\., done=dones\)"):
        rollout.extend(np.zeros((1, 2, 2)))
    add(rollout, 0, [1, 4], [1, 1], [1, 1])
    rollout.compute_advantages(PLAIN)
    sample = rollout.sample(5)
    assert sample.observations.shape == (5, 2) and set(sample.advantages.tolist()) <= {1.0, 4.0}
    assert rollout.size() == 2
    rollout.reset()
    assert (rollout.size(), rollout.n_episodes, rollout.n_running_steps, rollout.n_dropped_episodes) == (0, 0, 0, 0)


def test_non_finite_weights_name_the_rewards_and_the_remedies() -> None:
    rollout = buffer(gamma=1.0)
    add(rollout, 0, [3e38, 1], [1, 1], [0, 1])
    add(rollout, 1, [3e38, 1], [0, 1], [1, 1])  # R(τ) = 6e38 overflows float32
    with pytest.raises(
        ValueError, match=r"rewards reach \|r\| = 3e\+38 .*VecNormalize\(norm_reward=True\).*normalize_advantage"
    ):
        rollout.compute_advantages(PLAIN)


def test_one_step_batch_is_not_normalised() -> None:
    """As PPO does: normalising a single weight would divide by an undefined std."""
    rollout = buffer(n_envs=1)
    add(rollout, 0, [2.5], [1], [1])
    rollout.compute_advantages(PLAIN, normalize=True)
    assert rollout.advantages[0] == 2.5


def test_dict_observations() -> None:
    space = spaces.Dict({"image": spaces.Box(0, 255, (3, 2, 2), np.uint8), "position": spaces.Discrete(5)})
    rollout = DictEpisodeRolloutBuffer(4, space, ACTIONS, device="cpu", gamma=1.0, n_envs=2)
    assert isinstance(rollout, DictRolloutBuffer)
    for step in range(3):
        obs = {"image": np.full((2, 3, 2, 2), step, dtype=np.uint8), "position": np.array([step, 4 - step])}
        rollout.add(obs, np.array([0, 1]), np.ones(2), np.array([step == 0] * 2), done=np.array([step == 2] * 2))
    rollout.compute_advantages(PLAIN)
    (samples,) = rollout.get()
    assert isinstance(samples, DictEpisodeRolloutBufferSamples)
    np.testing.assert_array_equal(samples.observations["image"][:, 0, 0, 0].cpu().numpy(), [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(samples.observations["position"].cpu().numpy().flatten(), [0, 1, 2, 4, 3, 2])
    np.testing.assert_array_equal(samples.advantages.cpu().numpy(), [3] * 6)
