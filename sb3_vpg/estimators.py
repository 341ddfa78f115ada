"""
The return and advantage estimators of vanilla policy gradient, as pure functions.

Every function takes time-major arrays of shape ``(n_steps, n_envs)``, the layout of SB3's rollout buffers.
``dones[t, e]`` is 1 where the transition ``t`` of env ``e`` is the last of its episode (terminated *or*
truncated: VPG trains on whole episodes with a finite horizon, so nothing is bootstrapped beyond it) and
``episode_starts[t, e]`` is 1 where it is the first. Rows of an episode that has not ended yet get values
that depend on rewards not seen yet: callers only read the rows of complete episodes.
"""

import numpy as np


def reward_to_go(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """
    Discounted reward-to-go of every step, ``Σ_{t'≥t} γ^(t'-t) r_{t'}`` within its episode.

    :param rewards: Rewards ``r_t``, shape ``(n_steps, n_envs)``
    :param dones: 1 where the step ends its episode, shape ``(n_steps, n_envs)``
    :param gamma: Discount factor γ in [0, 1]
    :return: The reward-to-go, same shape, float64
    """
    to_go = np.zeros(rewards.shape, dtype=np.float64)
    next_to_go = np.zeros(rewards.shape[1:], dtype=np.float64)
    for step in reversed(range(len(rewards))):
        next_to_go = rewards[step] + gamma * next_to_go * (1.0 - dones[step])
        to_go[step] = next_to_go
    return to_go


def episode_start_rows(episode_starts: np.ndarray) -> np.ndarray:
    """
    For every step, the row at which its episode started.

    :param episode_starts: 1 where the step is the first of its episode, shape ``(n_steps, n_envs)``
    :return: Row indices, same shape (0 where no start precedes the step)
    """
    rows = np.arange(len(episode_starts))[:, None]
    return np.maximum.accumulate(np.where(episode_starts > 0, rows, 0), axis=0)


def steps_since_start(episode_starts: np.ndarray) -> np.ndarray:
    """
    For every step, its index t within its episode (0 on the episode's first step).

    :param episode_starts: 1 where the step is the first of its episode, shape ``(n_steps, n_envs)``
    :return: Step indices, same shape
    """
    return np.arange(len(episode_starts))[:, None] - episode_start_rows(episode_starts)


def mean_return_by_step(returns_to_go: np.ndarray, steps: np.ndarray, n_episodes: int) -> np.ndarray:
    """
    The batch-mean baseline: for every step index t, the mean over the batch's m episodes of their reward-to-go
    from step t, ``b_t = (1/m) Σ_j G_{j,t}``, an episode already over by step t counting 0 (nothing is left to go).
    ``b_0`` is the batch's mean return (1/m) Σ_j R(τ_j). Each episode is in its own b_t, so
    ``E[(1/m) Σ_j Σ_t ∇log π(a_t|s_t) (G_{j,t} − b_t)] = ((m − 1)/m) E[(1/m) Σ_j Σ_t ∇log π(a_t|s_t) G_{j,t}]``.

    :param returns_to_go: The reward-to-go of every step of the batch's complete episodes, flat
    :param steps: The index t of each of these steps within its episode (:func:`steps_since_start`), flat
    :param n_episodes: m, the number of episodes in the batch
    :return: ``b_t`` for t = 0 … the longest episode's last step, shape ``(max(steps) + 1,)``
    """
    return np.bincount(steps, weights=returns_to_go) / n_episodes


def trajectory_returns(rewards: np.ndarray, episode_starts: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """
    The return of the whole trajectory, ``R(τ) = Σ_t γ^t r_t`` counted from the episode's first step,
    written on every step of that episode: the weight of Eq. (4).

    :param rewards: Rewards ``r_t``, shape ``(n_steps, n_envs)``
    :param episode_starts: 1 where the step is the first of its episode
    :param dones: 1 where the step is the last of its episode
    :param gamma: Discount factor γ in [0, 1]
    :return: R(τ) of each step's episode, same shape, float64
    """
    return returns_from_reward_to_go(reward_to_go(rewards, dones, gamma), episode_starts)


def returns_from_reward_to_go(to_go: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
    """
    R(τ) from the reward-to-go already computed: the reward-to-go of the episode's first step, on every step.

    :param to_go: The reward-to-go of every step (:func:`reward_to_go`), shape ``(n_steps, n_envs)``
    :param episode_starts: 1 where the step is the first of its episode
    :return: R(τ) of each step's episode, same shape
    """
    return np.take_along_axis(to_go, episode_start_rows(episode_starts), axis=0)


def generalized_advantages(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float, gae_lambda: float
) -> np.ndarray:
    """
    GAE(λ) over complete episodes (Schulman et al. 2016, Eq. 16):
    ``A_t = Σ_l (γλ)^l δ_{t+l}`` with ``δ_t = r_t + γ V(s_{t+1}) − V(s_t)`` and ``V = 0`` past the last step,
    so that λ = 1 gives the Monte-Carlo advantage ``reward_to_go − V(s_t)``.

    :param rewards: Rewards ``r_t``, shape ``(n_steps, n_envs)``
    :param values: State values ``V(s_t)``, same shape
    :param dones: 1 where the step is the last of its episode
    :param gamma: Discount factor γ in [0, 1]
    :param gae_lambda: λ in [0, 1]
    :return: The advantages, same shape, float64
    """
    advantages = np.zeros(rewards.shape, dtype=np.float64)
    next_advantage = np.zeros(rewards.shape[1:], dtype=np.float64)
    next_value = np.zeros(rewards.shape[1:], dtype=np.float64)
    for step in reversed(range(len(rewards))):
        not_last = 1.0 - dones[step]
        delta = rewards[step] + gamma * next_value * not_last - values[step]
        next_advantage = delta + gamma * gae_lambda * not_last * next_advantage
        advantages[step] = next_advantage
        next_value = values[step]
    return advantages
