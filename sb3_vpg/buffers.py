"""
Rollout buffers that hand out whole episodes only.

SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer` holds exactly ``n_steps`` transitions per env
and is emptied after every update, so an episode still running at the end of a rollout is cut in two and its
return bootstrapped. Vanilla policy gradient needs R(τ) of *whole* trajectories, so these subclasses

- grow when a rollout is longer than the buffer (a batch given in episodes, or episodes carried over),
- record where each episode ends (``dones``, truncations included: they end τ, nothing is bootstrapped),
- give :meth:`complete_episodes` only the episodes that have ended, each exactly once, and
- keep the steps of every episode still running for the update in which it ends.

Storage stays time-major ``(rows, n_envs, ...)`` as in SB3. Each env ``e`` has its own first unconsumed row,
``first_rows[e]``: rows before it were already trained on and are dropped by :meth:`discard_consumed`.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TensorDict

#: Rows allocated per env when the batch is given in episodes (the buffer doubles whenever it is full).
INITIAL_ROWS = 1024

#: Default cap on the length of one episode: past it, collection stops with an error instead of growing forever.
MAX_EPISODE_STEPS = 100_000

# The per-row arrays of SB3's rollout buffers, besides the observations, plus the ``dones`` added here.
_ROW_ARRAYS = ("actions", "rewards", "returns", "episode_starts", "values", "log_probs", "advantages", "dones")


class EpisodeBatch(NamedTuple):
    """
    The complete episodes of one update.

    ``rewards``, ``episode_starts`` and ``dones`` are time-major ``(rows, n_envs)`` over the whole stored
    window, for the estimators of :mod:`sb3_vpg.estimators`; ``mask`` selects the rows that belong to the
    batch, and ``observations`` / ``actions`` are those rows already flattened as ``array[mask]``.
    """

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    rewards: np.ndarray
    episode_starts: np.ndarray
    dones: np.ndarray
    mask: np.ndarray
    n_episodes: int


class WholeEpisodeMixin:
    """
    Turns an SB3 rollout buffer into one that only hands out complete episodes (see the module docstring).
    Mixed into :class:`RolloutBuffer` and :class:`DictRolloutBuffer` below.

    :param buffer_size: Rows allocated per env at first (``n_steps``); ``None`` for :data:`INITIAL_ROWS`
    :param max_episode_steps: Longest episode accepted; a longer one raises ``RuntimeError`` while collecting
    """

    observations: np.ndarray | dict[str, np.ndarray]
    dones: np.ndarray
    episode_starts: np.ndarray
    rewards: np.ndarray
    actions: np.ndarray
    buffer_size: int
    pos: int
    full: bool
    n_envs: int
    to_torch: Callable[..., th.Tensor]

    def __init__(
        self,
        buffer_size: int | None,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1.0,
        gamma: float = 0.99,
        n_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
    ):
        self.max_episode_steps = max_episode_steps
        # What SB3's add() writes as the value and log-probability of each step: nothing VPG reads.
        self._not_recorded = th.zeros(n_envs)
        rows = buffer_size or INITIAL_ROWS
        super().__init__(rows, observation_space, action_space, device, gae_lambda=gae_lambda, gamma=gamma, n_envs=n_envs)  # type: ignore[call-arg]

    def reset(self) -> None:
        """Forget everything, running episodes included: to be called when the envs are reset."""
        super().reset()  # type: ignore[misc]
        self.dones = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.first_rows = np.zeros(self.n_envs, dtype=np.int64)
        self.episode_lengths = np.zeros(self.n_envs, dtype=np.int64)
        self.n_complete_episodes = 0

    def add(  # type: ignore[override]
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """
        Store one step of every env, as SB3's ``add`` does, and whether it ended its episode. Neither V(s_t) nor
        log π(a_t|s_t) is stored: VPG computes both at update time, with the parameters it differentiates.

        :param obs: Observation
        :param action: Action
        :param reward: Reward
        :param episode_start: Whether the step is the first of its episode, one per env
        :param done: Whether the step ended the episode (terminated or truncated), one per env
        """
        episode_lengths = np.where(episode_start, 1, self.episode_lengths + 1)
        if episode_lengths.max() > self.max_episode_steps:
            env_index = int(episode_lengths.argmax())
            raise RuntimeError(
                f"The episode running in env {env_index} has lasted more than max_episode_steps={self.max_episode_steps} "
                "steps without ending. VPG trains on whole episodes only and keeps every step until its episode ends: "
                "give the env a time limit (gymnasium.wrappers.TimeLimit) or raise max_episode_steps."
            )
        if self.pos == self.buffer_size:
            self._resize(2 * self.buffer_size)
        self.episode_lengths = episode_lengths
        self.dones[self.pos] = done
        self.n_complete_episodes += int(np.count_nonzero(done))
        super().add(obs, action, reward, episode_start, self._not_recorded, self._not_recorded)  # type: ignore[misc, arg-type]

    def complete_episodes(self) -> EpisodeBatch:
        """
        Hand out every episode that has ended and was not handed out before, and mark it consumed.

        :return: The batch; ``n_episodes`` is 0 when no episode has ended
        """
        rows = np.arange(self.pos)[:, None]
        dones = self.dones[: self.pos]
        # One past the last step that ended an episode, per env (never before the consumed rows).
        last_ends = np.where(dones.any(axis=0), self.pos - np.argmax(dones[::-1], axis=0), 0)
        ends = np.maximum(self.first_rows, last_ends)
        mask = (rows >= self.first_rows) & (rows < ends)
        batch = EpisodeBatch(
            observations=self._flat_observations(mask),
            # float32 as in SB3's _get_samples: actions are stored in the action space's dtype (int8 for MultiBinary).
            actions=self.to_torch(self.actions[: self.pos][mask].astype(np.float32, copy=False)),
            rewards=self.rewards[: self.pos].copy(),
            episode_starts=self.episode_starts[: self.pos].copy(),
            dones=dones.copy(),
            mask=mask,
            n_episodes=self.n_complete_episodes,
        )
        self.first_rows = ends
        self.n_complete_episodes = 0
        return batch

    def discard_consumed(self) -> None:
        """Drop the rows that every env has consumed, moving the running episodes to the front."""
        start = int(self.first_rows.min())
        if start == 0:
            return
        end = self.pos

        def shift(array: np.ndarray) -> np.ndarray:
            array[: end - start] = array[start:end]
            return array

        self._map_rows(shift)
        self.pos -= start
        self.first_rows -= start
        self.full = False

    def _resize(self, n_rows: int) -> None:
        def grow(array: np.ndarray) -> np.ndarray:
            grown = np.zeros((n_rows, *array.shape[1:]), dtype=array.dtype)
            grown[: self.pos] = array[: self.pos]
            return grown

        self._map_rows(grow)
        self.buffer_size = n_rows
        self.full = False

    def _map_rows(self, function: Callable[[np.ndarray], np.ndarray]) -> None:
        """Apply ``function`` to every per-row array, the observations (or each of their keys) included."""
        for name in _ROW_ARRAYS:
            setattr(self, name, function(getattr(self, name)))
        if isinstance(self.observations, dict):
            self.observations = {key: function(obs) for key, obs in self.observations.items()}
        else:
            self.observations = function(self.observations)

    def _flat_observations(self, mask: np.ndarray) -> th.Tensor | TensorDict:
        if isinstance(self.observations, dict):
            return {key: self.to_torch(obs[: self.pos][mask]) for key, obs in self.observations.items()}
        return self.to_torch(self.observations[: self.pos][mask])


class EpisodeRolloutBuffer(WholeEpisodeMixin, RolloutBuffer):
    """:class:`RolloutBuffer` that hands out whole episodes only (see :class:`WholeEpisodeMixin`)."""


class DictEpisodeRolloutBuffer(WholeEpisodeMixin, DictRolloutBuffer):
    """:class:`DictRolloutBuffer` that hands out whole episodes only (see :class:`WholeEpisodeMixin`)."""
