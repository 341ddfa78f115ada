"""
The return and advantage estimators of vanilla policy gradient: pure functions, and the table of the estimators VPG
offers (:data:`ESTIMATORS`).

The functions take arrays whose axis 0 runs over consecutive steps: one episode, a batch of episodes laid end to end,
or SB3's time-major ``(n_steps, n_envs)`` layout (each column on its own). ``dones[t]`` is 1 where step t is the last
of its episode (terminated *or* truncated: VPG trains on whole episodes with a finite horizon, so nothing is
bootstrapped beyond it) and ``episode_starts[t]`` is 1 where it is the first. Rows of an episode that has not ended
get values that depend on rewards not seen yet: callers only read the rows of complete episodes.

The sums over the future (reward-to-go, GAE) are computed in ⌈log₂ n⌉ vectorised passes
(:func:`discounted_sum_to_go`), never in a Python loop over the steps.

A batch may be split into parts, one per process of a data-parallel run (:mod:`sb3_vpg.distributed`): the weights of
one part's steps then need sums over the whole batch (the mean baseline's), which an estimator takes from
:attr:`EpisodeSteps.total`: in one process, the identity.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np


def discounted_sum_to_go(terms: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """
    ``x_t = terms_t + discounts_t · x_{t+1}`` along axis 0, with ``x = 0`` past the last row: the reward-to-go with
    ``discounts = γ(1 − dones)``, GAE with ``terms = δ`` and ``discounts = γλ(1 − dones)``.

    Computed by doubling: after the pass with shift s, row t holds the sum over its next 2s rows, and ``factors[t]``
    the product of the discounts over them; ⌈log₂ n⌉ passes of whole-array operations.

    :param terms: The terms, shape ``(n, ...)``
    :param discounts: The factor between row t and row t + 1, same shape
    :return: The sums, same shape, float64
    """
    sums = np.array(terms, dtype=np.float64)
    factors = np.array(discounts, dtype=np.float64)
    shift = 1
    while shift < len(sums):
        sums[:-shift] += factors[:-shift] * sums[shift:]
        factors[:-shift] *= factors[shift:]
        shift *= 2
    return sums


def reward_to_go(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """
    Discounted reward-to-go of every step, ``G_t = Σ_{t'≥t} γ^(t'-t) r_{t'}`` within its episode.

    :param rewards: Rewards ``r_t``, shape ``(n_steps, ...)``
    :param dones: 1 where the step ends its episode, same shape
    :param gamma: Discount factor γ in [0, 1]
    :return: The reward-to-go, same shape, float64
    """
    return discounted_sum_to_go(rewards, gamma * (1.0 - np.asarray(dones, dtype=np.float64)))


def episode_start_rows(episode_starts: np.ndarray) -> np.ndarray:
    """
    For every step, the row at which its episode started.

    :param episode_starts: 1 where the step is the first of its episode, shape ``(n_steps, ...)``
    :return: Row indices, same shape (0 where no start precedes the step)
    """
    rows = np.arange(len(episode_starts)).reshape(-1, *([1] * (episode_starts.ndim - 1)))
    return np.maximum.accumulate(np.where(episode_starts > 0, rows, 0), axis=0)


def steps_since_start(episode_starts: np.ndarray) -> np.ndarray:
    """
    For every step, its index t within its episode (0 on the episode's first step).

    :param episode_starts: 1 where the step is the first of its episode, shape ``(n_steps, ...)``
    :return: Step indices, same shape
    """
    rows = np.arange(len(episode_starts)).reshape(-1, *([1] * (episode_starts.ndim - 1)))
    return rows - episode_start_rows(episode_starts)


class BatchTotal(Protocol):
    """
    The sum over the parts of a batch (one per process) of an array that each part computes from its own steps,
    indexed alike; ``ragged=True`` for 1-D arrays of different lengths, zero-padded to the longest.
    """

    def __call__(self, values: np.ndarray, ragged: bool = False) -> np.ndarray: ...


def this_part_only(values: np.ndarray, ragged: bool = False) -> np.ndarray:
    """The :class:`BatchTotal` of a batch in one part: the array itself."""
    return values


def mean_return_by_step(
    returns_to_go: np.ndarray, steps: np.ndarray, n_episodes: int, total: BatchTotal = this_part_only
) -> np.ndarray:
    """
    The batch-mean baseline: for every step index t, the mean over the batch's m episodes of their reward-to-go
    from step t, ``b_t = (1/m) Σ_j G_{j,t}``, an episode already over by step t counting 0 (nothing is left to go).
    ``b_0`` is the batch's mean return (1/m) Σ_j R(τ_j). Each episode is in its own b_t, so
    ``E[(1/m) Σ_j Σ_t ∇log π(a_t|s_t) (G_{j,t} − b_t)] = ((m − 1)/m) E[(1/m) Σ_j Σ_t ∇log π(a_t|s_t) G_{j,t}]``.

    :param returns_to_go: The reward-to-go of every step of the batch's complete episodes, flat
    :param steps: The index t of each of these steps within its episode (:func:`steps_since_start`), flat
    :param n_episodes: m, the number of episodes in the batch
    :param total: The sum over the batch's parts, for a batch split across processes
    :return: ``b_t`` for t = 0 … the longest episode's last step (of any part), shape ``(max(steps) + 1,)``
    """
    return total(np.bincount(steps, weights=returns_to_go), ragged=True) / n_episodes


def trajectory_returns(rewards: np.ndarray, episode_starts: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """
    The return of the whole trajectory, ``R(τ) = Σ_t γ^t r_t`` counted from the episode's first step,
    written on every step of that episode: the weight of Eq. (4).

    :param rewards: Rewards ``r_t``, shape ``(n_steps, ...)``
    :param episode_starts: 1 where the step is the first of its episode
    :param dones: 1 where the step is the last of its episode
    :param gamma: Discount factor γ in [0, 1]
    :return: R(τ) of each step's episode, same shape, float64
    """
    return returns_from_reward_to_go(reward_to_go(rewards, dones, gamma), episode_starts)


def returns_from_reward_to_go(to_go: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
    """
    R(τ) from the reward-to-go already computed: the reward-to-go of the episode's first step, on every step.

    :param to_go: The reward-to-go of every step (:func:`reward_to_go`), shape ``(n_steps, ...)``
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

    :param rewards: Rewards ``r_t``, shape ``(n_steps, ...)``
    :param values: State values ``V(s_t)``, same shape
    :param dones: 1 where the step is the last of its episode
    :param gamma: Discount factor γ in [0, 1]
    :param gae_lambda: λ in [0, 1]
    :return: The advantages, same shape, float64
    """
    not_last = 1.0 - np.asarray(dones, dtype=np.float64)
    next_values = np.zeros(values.shape, dtype=np.float64)
    next_values[:-1] = values[1:]
    deltas = rewards + gamma * next_values * not_last - values
    return discounted_sum_to_go(deltas, gamma * gae_lambda * not_last)


class EpisodeSteps(NamedTuple):
    """
    The steps of a batch of complete episodes, laid end to end (flat): what an estimator weights. In a batch split
    across processes, the steps of this process's part.

    :param rewards: ``r_t``
    :param returns_to_go: The reward-to-go ``G_t`` of each step (:func:`reward_to_go`)
    :param episode_starts: 1 on the first step of each episode
    :param values: ``V(s_t)`` of the policy's value head, for the estimators that subtract it (else ``None``)
    :param batch_episodes: m, the number of episodes of the whole batch (``None``: this part's, the whole batch)
    :param total: The sum over the batch's parts (:class:`BatchTotal`); the identity for a batch in one part
    """

    rewards: np.ndarray
    returns_to_go: np.ndarray
    episode_starts: np.ndarray
    values: np.ndarray | None
    batch_episodes: int | None = None
    total: BatchTotal = this_part_only

    @property
    def n_episodes(self) -> int:
        """m, the number of episodes of the whole batch."""
        return int(np.count_nonzero(self.episode_starts)) if self.batch_episodes is None else self.batch_episodes

    @property
    def dones(self) -> np.ndarray:
        """1 on the last step of each episode: the step before the next start, and the last step of all."""
        dones = np.ones(len(self.episode_starts))
        dones[:-1] = self.episode_starts[1:]
        return dones

    @property
    def whole_returns(self) -> np.ndarray:
        """R(τ) of each step's episode: the reward-to-go of its first step."""
        return returns_from_reward_to_go(self.returns_to_go, self.episode_starts)


def _values(steps: EpisodeSteps) -> np.ndarray:
    assert steps.values is not None, "this estimator subtracts V(s_t): compute the values first"
    return steps.values


def _whole_return(steps: EpisodeSteps, gamma: float, gae_lambda: float) -> np.ndarray:
    """Eq. (4): every step of τ_i weighted by R(τ_i)."""
    return steps.whole_returns


def _reward_to_go(steps: EpisodeSteps, gamma: float, gae_lambda: float) -> np.ndarray:
    """G_t: a step is weighted by the rewards that follow it (causality)."""
    return steps.returns_to_go


def _whole_return_minus_mean(steps: EpisodeSteps, gamma: float, gae_lambda: float) -> np.ndarray:
    """R(τ_i) − b_0, with b_0 = (1/m) Σ_j R(τ_j) the batch's mean return."""
    sum_of_returns = steps.total(np.array([steps.whole_returns[steps.episode_starts > 0].sum()]))[0]
    return steps.whole_returns - sum_of_returns / steps.n_episodes


def _reward_to_go_minus_mean(steps: EpisodeSteps, gamma: float, gae_lambda: float) -> np.ndarray:
    """G_t − b_t, with b_t the batch's mean reward-to-go from step t (:func:`mean_return_by_step`)."""
    index = steps_since_start(steps.episode_starts)
    return steps.returns_to_go - mean_return_by_step(steps.returns_to_go, index, steps.n_episodes, steps.total)[index]


def _whole_return_minus_value(steps: EpisodeSteps, gamma: float, gae_lambda: float) -> np.ndarray:
    """R(τ_i) − V(s_t)."""
    return steps.whole_returns - _values(steps)


def _generalized_advantage(steps: EpisodeSteps, gamma: float, gae_lambda: float) -> np.ndarray:
    """GAE(λ) (:func:`generalized_advantages`); λ = 1 is G_t − V(s_t)."""
    return generalized_advantages(steps.rewards, _values(steps), steps.dones, gamma, gae_lambda)


#: How an estimator's expectation relates to ∇J(θ), J the expected return R(τ) discounted from each episode's start
#: (the docs read these; the tests check each by enumeration). The reward-to-go discounts from step t, not from the
#: start: below γ = 1 it drops the γ^t of the step, so it estimates another gradient.
UNBIASED = "E[ĝ] = ∇J"
UNBIASED_AT_GAMMA_1 = "E[ĝ] = ∇J at γ = 1"
SHRUNK = "E[ĝ] = ((m − 1)/m) ∇J"
SHRUNK_AT_GAMMA_1 = "E[ĝ] = ((m − 1)/m) ∇J at γ = 1"
UNBIASED_AT_LAMBDA_1 = "E[ĝ] = ∇J at γ = λ = 1; biased below λ = 1 unless V = V^π"


@dataclass(frozen=True)
class Estimator:
    """
    One way of weighting log π_θ(a_t|s_t) in the loss: what the user-facing keywords ``reward_to_go`` and
    ``baseline`` select, what it needs, and how its weights are computed.

    :param name: Short name, as the Optuna sampler and the docs show it
    :param reward_to_go: The value of VPG's ``reward_to_go`` that selects it
    :param baseline: The value of VPG's ``baseline`` that selects it
    :param weights: The weight of each step, from the batch's steps, γ and λ
    :param expectation: How E[ĝ] relates to ∇J(θ)
    :param takes_gae_lambda: Whether ``gae_lambda`` below 1 means something to it
    :param min_episodes: The fewest episodes per batch with which its weights are not all 0
    """

    name: str
    reward_to_go: bool
    baseline: str | None
    weights: Callable[[EpisodeSteps, float, float], np.ndarray]
    expectation: str
    takes_gae_lambda: bool = False
    min_episodes: int = 1

    @property
    def needs_values(self) -> bool:
        """Whether its weights subtract V(s_t), the policy's value head (which is then trained too)."""
        return self.baseline == "value"


#: Every estimator VPG offers, Eq. (4) first. Adding one is adding an entry.
ESTIMATORS: tuple[Estimator, ...] = (
    Estimator("return", False, None, _whole_return, UNBIASED),
    Estimator("reward-to-go", True, None, _reward_to_go, UNBIASED_AT_GAMMA_1),
    Estimator("return-mean", False, "mean", _whole_return_minus_mean, SHRUNK, min_episodes=2),
    Estimator("reward-to-go-mean", True, "mean", _reward_to_go_minus_mean, SHRUNK_AT_GAMMA_1, min_episodes=2),
    Estimator("return-value", False, "value", _whole_return_minus_value, UNBIASED),
    Estimator("gae", True, "value", _generalized_advantage, UNBIASED_AT_LAMBDA_1, takes_gae_lambda=True),
)

#: The values VPG's ``baseline`` takes
BASELINES: tuple[str | None, ...] = tuple(dict.fromkeys(estimator.baseline for estimator in ESTIMATORS))


def estimator_for(reward_to_go: bool, baseline: str | None) -> Estimator:
    """
    The estimator that VPG's keywords select.

    :param reward_to_go: VPG's ``reward_to_go``
    :param baseline: VPG's ``baseline``
    """
    for estimator in ESTIMATORS:
        if (estimator.reward_to_go, estimator.baseline) == (bool(reward_to_go), baseline):
            return estimator
    raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}.")


def estimator_named(name: str) -> Estimator:
    """
    The estimator of :data:`ESTIMATORS` called ``name``.

    :param name: One of the estimators' names
    """
    for estimator in ESTIMATORS:
        if estimator.name == name:
            return estimator
    raise ValueError(f"Unknown estimator {name!r}; the estimators are {[e.name for e in ESTIMATORS]}.")
