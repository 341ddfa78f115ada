"""
Rollout buffers of whole episodes.

SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer` holds exactly ``n_steps`` transitions per env and is
emptied after every update, so an episode still running at the end of a rollout is cut in two and its return
bootstrapped. Vanilla policy gradient needs R(τ) of *whole* trajectories, so these subclasses keep two stores:

- **the running episodes**: each env's current episode, in arrays of that env's own, which grow with the episode.
  Memory is the steps of the running episodes (each env keeps room for the longest episode it has run), not
  ``n_envs`` × the age of the oldest.
- **the batch**: the complete episodes not trained on yet, laid end to end (one row per step, SB3's ``observations``,
  ``actions``, ``rewards``; ``pos`` rows). When an episode ends, its steps move there and its reward-to-go
  (``returns``) is computed, once, vectorised. :meth:`~EpisodeRolloutBuffer.compute_advantages` writes the weights of
  the update into ``advantages``; :meth:`~EpisodeRolloutBuffer.get` hands out the batch; the update then discards it
  (:meth:`~EpisodeRolloutBuffer.discard_batch`).

:meth:`~EpisodeRolloutBuffer.add` is all or nothing: it writes only rows that no committed state refers to, and
commits the step in its last line, so an exception or an interrupt anywhere in it leaves the buffer as it was. An env
reset ends its running episode without an end (``episode_start`` on a step while an episode runs): that episode is
dropped, whole. A step that comes without its episode's start (after ``load`` or ``set_env`` without a reset) is
not stored, and its episode is dropped when it ends. Both count in ``n_dropped_episodes``.
"""

from collections.abc import Callable, Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_vpg.estimators import EpisodeSteps, Estimator, reward_to_go
from sb3_vpg.type_aliases import DictEpisodeRolloutBufferSamples, EpisodeRolloutBufferSamples

#: Default cap on the length of one episode: past it, collection stops with an error instead of growing forever.
MAX_EPISODE_STEPS = 100_000

#: The most rows per env allocated at first: every store grows (doubling) as it needs to.
INITIAL_ROWS = 1024

Observations = np.ndarray | dict[str, np.ndarray]


def _map(function: Callable[[np.ndarray], np.ndarray], observations: Observations) -> Observations:
    """``function`` applied to the observation array, or to each array of Dict observations."""
    if isinstance(observations, dict):
        return {key: function(array) for key, array in observations.items()}
    return function(observations)


def _items(observations: Observations) -> list[tuple[str, np.ndarray]]:
    """Each observation array with its key (``""`` for a non-Dict space)."""
    return list(observations.items()) if isinstance(observations, dict) else [("", observations)]


def _grown(array: np.ndarray, n_rows: int) -> np.ndarray:
    """A copy of ``array`` with room for ``n_rows`` rows (doubling), every row at the index it had."""
    capacity = max(len(array), 1)
    while capacity < n_rows:
        capacity *= 2
    if capacity == len(array):
        return array
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class _EpisodeSteps:
    """
    The observations, actions and rewards of one env's running episode, in arrays that grow without moving a row.

    :param observations: Empty observation array(s), one row per step
    :param actions: Empty action array
    :param rewards: Empty reward array
    """

    def __init__(self, observations: Observations, actions: np.ndarray, rewards: np.ndarray):
        self.observations = observations
        self.actions = actions
        self.rewards = rewards

    def reserve(self, n_rows: int) -> None:
        """Make room for ``n_rows`` rows; a row written before keeps its index (and its value)."""
        self.observations = _map(lambda array: _grown(array, n_rows), self.observations)
        self.actions = _grown(self.actions, n_rows)
        self.rewards = _grown(self.rewards, n_rows)


class _RunningEpisodes(NamedTuple):
    """
    Where each env's running episode stands.

    :param starts: Its first row in the env's store
    :param lengths: Its steps so far, stored or not
    :param holds: Whether the buffer holds it from its first step (else its steps are not stored)
    """

    starts: np.ndarray
    lengths: np.ndarray
    holds: np.ndarray


class EpisodeRolloutBuffer(RolloutBuffer):
    """
    Rollout buffer that hands out whole episodes only (see the module docstring).

    :param buffer_size: Rows allocated per env at first (SB3 passes ``n_steps``), at most :data:`INITIAL_ROWS`; every
        store grows as needed
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device of the samples
    :param gae_lambda: λ of GAE(λ), for the estimators that take it
    :param gamma: Discount factor of the reward-to-go
    :param n_envs: Number of parallel environments
    :param max_episode_steps: Longest episode accepted: every step is kept until its episode ends, so a longer one
        raises ``RuntimeError`` while collecting instead of growing memory forever
    """

    samples_class: type[EpisodeRolloutBufferSamples] | type[DictEpisodeRolloutBufferSamples] = EpisodeRolloutBufferSamples
    observations: Observations  # type: ignore[assignment]

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
    ):
        self.max_episode_steps = max_episode_steps
        super().__init__(
            min(max(buffer_size, 1), INITIAL_ROWS), observation_space, action_space, device, gae_lambda, gamma, n_envs
        )

    def reset(self) -> None:
        """Forget everything: the batch, the running episodes and the count of dropped episodes."""
        super(RolloutBuffer, self).reset()
        self.observations, self.actions, self.rewards = self._empty_steps(self.buffer_size * self.n_envs)
        #: The reward-to-go G_t of each step of the batch
        self.returns = np.zeros(len(self.rewards), dtype=np.float32)
        #: 1 on the first step of each episode of the batch
        self.episode_starts = np.zeros(len(self.rewards), dtype=np.float32)
        #: The weight of each step's log π in the update (:meth:`compute_advantages`)
        self.advantages = np.zeros(len(self.rewards), dtype=np.float32)
        self.advantages_computed = False
        #: Complete episodes in the batch (m)
        self.n_episodes = 0
        #: Episodes dropped because the buffer never held their start or their env was reset before they ended
        self.n_dropped_episodes = 0
        self._env_steps = [_EpisodeSteps(*self._empty_steps(self.buffer_size)) for _ in range(self.n_envs)]
        no_episodes = np.zeros(self.n_envs, dtype=np.int64)
        self._running = _RunningEpisodes(no_episodes, no_episodes, np.zeros(self.n_envs, dtype=bool))

    def _empty_steps(self, n_rows: int) -> tuple[Observations, np.ndarray, np.ndarray]:
        """Zeroed observation, action and reward arrays of ``n_rows`` rows."""
        if isinstance(self.obs_shape, dict):
            space = self.observation_space
            assert isinstance(space, spaces.Dict)
            observations: Observations = {
                key: np.zeros((n_rows, *shape), dtype=space[key].dtype) for key, shape in self.obs_shape.items()
            }
        else:
            observations = np.zeros((n_rows, *self.obs_shape), dtype=self.observation_space.dtype)
        actions = np.zeros((n_rows, self.action_dim), dtype=self.action_space.dtype)
        return observations, actions, np.zeros(n_rows, dtype=np.float32)

    @property
    def n_running_steps(self) -> int:
        """The steps of the running episodes that the buffer holds, waiting for their episode to end."""
        return int(self._running.lengths[self._running.holds].sum())

    @property
    def nbytes(self) -> int:
        """The memory the buffer's arrays take (the batch's room, and each env's room for its running episode)."""
        stores: list[tuple[Observations, np.ndarray, np.ndarray]] = [
            (self.observations, self.actions, self.rewards),
            *((steps.observations, steps.actions, steps.rewards) for steps in self._env_steps),
        ]
        arrays = [self.returns, self.episode_starts, self.advantages]
        for observations, actions, rewards in stores:
            arrays += [array for _, array in _items(observations)] + [actions, rewards]
        return sum(array.nbytes for array in arrays)

    @property
    def episode_returns(self) -> np.ndarray:
        """R(τ) of each episode of the batch."""
        return self.returns[: self.pos][self.episode_starts[: self.pos] > 0]

    def add(  # type: ignore[override]
        self,
        obs: Observations,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor | None = None,
        log_prob: th.Tensor | None = None,
        *,
        done: np.ndarray,
    ) -> None:
        """
        Store one step of every env, in SB3's order, and whether it ended its episode (``done``, terminated or
        truncated: nothing is bootstrapped). An episode that ends moves, whole, to the batch.

        :param obs: Observation
        :param action: Action
        :param reward: Reward
        :param episode_start: Whether the step is the first of its episode, one per env
        :param value: Not stored (VPG computes V(s_t) at update time): must be ``None``
        :param log_prob: Not stored (VPG computes log π(a_t|s_t) at update time): must be ``None``
        :param done: Whether the step ended its episode, one per env
        """
        if value is not None or log_prob is not None:
            raise ValueError(
                "EpisodeRolloutBuffer.add: value and log_prob must be None: V(s_t) and log π(a_t|s_t) are computed at "
                "update time, with the parameters that the update differentiates."
            )
        observations = self._by_key(obs)
        actions = np.asarray(action).reshape((self.n_envs, self.action_dim))
        rewards = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        starts_flags = np.asarray(episode_start, dtype=bool).reshape(self.n_envs)
        dones = np.asarray(done, dtype=bool).reshape(self.n_envs)

        # The running episodes after this step. Nothing that the committed state refers to is written before the
        # last line: a new episode's rows go after those of an episode its env cut short (still committed).
        before = self._running
        cut = starts_flags & (before.lengths > 0)
        holds = starts_flags | before.holds
        lengths = np.where(starts_flags, 1, before.lengths + 1)
        if lengths.max() > self.max_episode_steps:
            longest = int(lengths.argmax())
            raise RuntimeError(
                f"The episode running in env {longest} has lasted more than max_episode_steps={self.max_episode_steps} "
                "steps without ending. VPG trains on whole episodes only and keeps every step until its episode ends: "
                "give the env a time limit (gymnasium.wrappers.TimeLimit) or raise max_episode_steps."
            )
        stored_ends = before.starts + np.where(before.holds, before.lengths, 0)
        starts = np.where(starts_flags, np.where(cut, stored_ends, 0), before.starts)
        ends = starts + lengths
        for env in np.flatnonzero(holds):
            steps, last = self._env_steps[env], int(ends[env]) - 1
            steps.reserve(last + 1)
            for key, array in _items(steps.observations):
                array[last] = observations[key][env]
            steps.actions[last] = actions[env]
            steps.rewards[last] = rewards[env]

        finished = np.flatnonzero(dones & holds)
        row = self.pos
        self._reserve_batch(row + int(lengths[finished].sum()))
        for env in finished:
            row = self._append_episode(row, self._env_steps[env], int(starts[env]), int(ends[env]))

        # An episode cut short by a reset, or one whose first step the buffer never held, is dropped, whole.
        n_dropped = int(np.count_nonzero(cut)) + int(np.count_nonzero(dones & ~holds))
        running = _RunningEpisodes(np.where(dones, 0, starts), np.where(dones, 0, lengths), holds & ~dones)
        commit = (row, self.n_episodes + len(finished), self.n_dropped_episodes + n_dropped, running, False)
        self.pos, self.n_episodes, self.n_dropped_episodes, self._running, self.advantages_computed = commit

    def _by_key(self, obs: Observations) -> dict[str, np.ndarray]:
        """One step's observations of every env, shaped ``(n_envs, *shape)``, keyed as :func:`_items` keys them."""
        if isinstance(self.obs_shape, dict):
            assert isinstance(obs, dict)
            return {key: np.asarray(obs[key]).reshape((self.n_envs, *shape)) for key, shape in self.obs_shape.items()}
        return {"": np.asarray(obs).reshape((self.n_envs, *self.obs_shape))}

    def _reserve_batch(self, n_rows: int) -> None:
        """Make room for ``n_rows`` rows in the batch; a row written before keeps its index."""
        self.observations = _map(lambda array: _grown(array, n_rows), self.observations)
        self.actions = _grown(self.actions, n_rows)
        self.rewards = _grown(self.rewards, n_rows)
        self.returns = _grown(self.returns, n_rows)
        self.episode_starts = _grown(self.episode_starts, n_rows)
        self.advantages = _grown(self.advantages, n_rows)

    def _append_episode(self, row: int, steps: _EpisodeSteps, first: int, end: int) -> int:
        """
        Copy the steps ``first:end`` of a running episode, which has just ended, to the batch from ``row`` on, with
        their reward-to-go; return the row after them.
        """
        rows = slice(row, row + end - first)
        for (_, batch), (_, running) in zip(_items(self.observations), _items(steps.observations), strict=True):
            batch[rows] = running[first:end]
        self.actions[rows] = steps.actions[first:end]
        self.rewards[rows] = steps.rewards[first:end]
        last = np.zeros(end - first)
        last[-1] = 1.0
        with np.errstate(over="ignore"):  # a return beyond float32 is reported, with the remedies, by compute_advantages
            self.returns[rows] = reward_to_go(steps.rewards[first:end], last, self.gamma)
        self.episode_starts[rows] = 0.0
        self.episode_starts[row] = 1.0
        return rows.stop

    def compute_advantages(self, estimator: Estimator, values: np.ndarray | None = None, normalize: bool = False) -> None:
        """
        Write the weight of every step of the batch into ``advantages``: what :meth:`get` hands out.

        :param estimator: How the steps are weighted (:data:`~sb3_vpg.estimators.ESTIMATORS`)
        :param values: V(s_t) of the batch's steps, for an estimator that subtracts it
        :param normalize: Normalise the weights over the batch (mean 0, std 1); a one-step batch is left as it is,
            as in PPO
        """
        steps = EpisodeSteps(self.rewards[: self.pos], self.returns[: self.pos], self.episode_starts[: self.pos], values)
        weights = estimator.weights(steps, self.gamma, self.gae_lambda)
        if normalize and self.pos > 1:
            weights = (weights - weights.mean()) / (weights.std(ddof=1) + 1e-8)
        self.advantages[: self.pos] = weights
        if not np.isfinite(self.advantages[: self.pos]).all():
            raise ValueError(
                "The weights of log π(a_t|s_t) are not finite: the batch's rewards reach "
                f"|r| = {np.abs(self.rewards[: self.pos]).max():.3g} and its returns |R(τ)| = "
                f"{np.abs(self.episode_returns).max():.3g}, beyond what float32 holds. Scale the rewards down "
                "(VecNormalize(norm_reward=True), or a wrapper such as gymnasium.wrappers.TransformReward), "
                "or set normalize_advantage=True."
            )
        self.advantages_computed = True

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Not used: nothing is bootstrapped. Each episode's reward-to-go is computed when it ends."""
        raise NotImplementedError(
            "EpisodeRolloutBuffer bootstraps nothing: the reward-to-go of each episode is computed in add() when it "
            "ends, and the weights of an update by compute_advantages(estimator, values)."
        )

    def extend(self, *args, **kwargs) -> None:
        """Not used: steps are added one at a time, with whether each ended its episode."""
        raise NotImplementedError("EpisodeRolloutBuffer takes one step of every env at a time: add(..., done=dones).")

    def discard_batch(self) -> None:
        """Drop the batch once an update has trained on it; the running episodes stay."""
        self.pos, self.n_episodes, self.advantages_computed = 0, 0, False

    def observation_chunks(self, batch_size: int | None = None) -> Generator[th.Tensor | TensorDict, None, None]:
        """
        The observations of the batch, ``batch_size`` rows at a time (all at once if ``None``).

        :param batch_size: Rows per chunk
        """
        for rows in self._chunks(batch_size):
            yield self._observations_tensor(rows)

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[EpisodeRolloutBufferSamples | DictEpisodeRolloutBufferSamples, None, None]:
        """
        The steps of the batch's complete episodes, flat, episode after episode, ``batch_size`` rows at a time (all at
        once if ``None``). :meth:`compute_advantages` must have been called since the batch last changed.

        :param batch_size: Rows per sample
        """
        for rows in self._chunks(batch_size):
            yield self._get_samples(rows)

    def _chunks(self, batch_size: int | None) -> Generator[slice, None, None]:
        batch_size = batch_size or max(self.pos, 1)
        for start in range(0, self.pos, batch_size):
            yield slice(start, min(start + batch_size, self.pos))

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray | slice, env: VecNormalize | None = None
    ) -> EpisodeRolloutBufferSamples | DictEpisodeRolloutBufferSamples:
        if not self.advantages_computed:
            raise RuntimeError(
                "The weights of this batch are not computed: call compute_advantages(estimator, values) first "
                "(they depend on the estimator and, for a learned baseline, on V(s) at update time)."
            )
        return self.samples_class(
            self._observations_tensor(batch_inds),  # type: ignore[arg-type]
            # float32 as in SB3's _get_samples: actions are stored in the action space's dtype (int8 for MultiBinary).
            self.to_torch(self.actions[batch_inds].astype(np.float32, copy=False)),
            self.to_torch(self.returns[batch_inds]),
            self.to_torch(self.advantages[batch_inds]),
        )

    def _observations_tensor(self, rows: np.ndarray | slice) -> th.Tensor | TensorDict:
        if isinstance(self.observations, dict):
            return {key: self.to_torch(array[rows]) for key, array in self.observations.items()}
        return self.to_torch(self.observations[rows])


# SB3's DictRolloutBuffer types its observations and methods for Dict observations only; EpisodeRolloutBuffer's take
# both kinds, which mypy reports as a conflict of the two bases.
class DictEpisodeRolloutBuffer(EpisodeRolloutBuffer, DictRolloutBuffer):  # type: ignore[misc]
    """:class:`EpisodeRolloutBuffer` for Dict observations (a :class:`DictRolloutBuffer`, as SB3 expects of one)."""

    samples_class = DictEpisodeRolloutBufferSamples
