"""
Rollout buffers of whole episodes.

SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer` holds exactly ``n_steps`` transitions per env and is
emptied after every update, so an episode still running at the end of a rollout is cut in two and its return
bootstrapped. Vanilla policy gradient needs R(τ) of *whole* trajectories, so these subclasses keep the steps of each
episode until it ends, and hand out complete episodes only.

The steps of the running episodes are stored in blocks of :data:`BLOCK_ROWS` rows, taken from a pool that all envs
share (:class:`_BlockPool`): each running episode owns blocks of its own, so memory follows the steps of the running
episodes (not ``n_envs`` × the age of the oldest), while one step of every env is still written at once. An episode
that ends is copied, whole, to **the batch**, the complete episodes not trained on yet, laid end to end
(``n_episodes`` of them, ``pos`` steps), and its blocks go back to the pool.
:meth:`~EpisodeRolloutBuffer.compute_advantages` computes each step's reward-to-go (``returns``), once, vectorised over
the batch, and the update's weights (``advantages``); :meth:`~EpisodeRolloutBuffer.get` hands out the batch's steps,
chunk by chunk. The update then marks the batch trained (:meth:`~EpisodeRolloutBuffer.mark_trained`): like the last
rollout of SB3's buffers, it stays readable until the next collection starts and drops it
(:meth:`~EpisodeRolloutBuffer.discard_batch`), and it is never extended or trained again.

:meth:`~EpisodeRolloutBuffer.add` is all or nothing: it writes only rows that no committed state refers to, and
commits the step in its last line, so an exception or an interrupt anywhere in it leaves the buffer as it was. An env
reset ends its running episode without an end (``episode_start`` on a step while an episode runs): that episode is
dropped, whole. A step that comes without its episode's start (after ``load`` or ``set_env`` without a reset) is
not stored, and its episode is dropped when it ends. Both count in ``n_dropped_episodes``.
"""

from collections.abc import Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_vpg.estimators import BatchTotal, EpisodeSteps, Estimator, reward_to_go, this_part_only
from sb3_vpg.type_aliases import DictEpisodeRolloutBufferSamples, EpisodeRolloutBufferSamples

#: Default cap on the length of one episode: past it, collection stops with an error instead of growing forever.
MAX_EPISODE_STEPS = 100_000

#: Steps per block: an episode holds whole blocks.
BLOCK_ROWS = 64

#: The most steps per env allocated at first: the pool grows (doubling) as it needs to.
INITIAL_ROWS = 1024

Observations = np.ndarray | dict[str, np.ndarray]


def _grown(array: np.ndarray, n_rows: int) -> np.ndarray:
    """A copy of ``array`` with room for ``n_rows`` rows, every row at the index it had."""
    grown = np.zeros((n_rows, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class _BlockPool:
    """
    The stored steps, in blocks of :data:`BLOCK_ROWS` rows: block ``b`` is rows ``b·BLOCK_ROWS`` to
    ``(b + 1)·BLOCK_ROWS − 1`` of every field's array. The pool grows by doubling, every row keeping its index.

    :param fields: Each field's shape of one step and dtype, by name
    :param n_blocks: Blocks allocated at first
    """

    def __init__(self, fields: dict[str, tuple[tuple[int, ...], np.dtype]], n_blocks: int):
        self.arrays = {name: np.zeros((n_blocks * BLOCK_ROWS, *shape), dtype) for name, (shape, dtype) in fields.items()}

    @property
    def n_blocks(self) -> int:
        """The blocks allocated."""
        return len(next(iter(self.arrays.values()))) // BLOCK_ROWS

    def grow(self) -> range:
        """Double the blocks; return the new blocks' indices."""
        n_blocks = self.n_blocks
        self.arrays = {name: _grown(array, 2 * n_blocks * BLOCK_ROWS) for name, array in self.arrays.items()}
        return range(n_blocks, 2 * n_blocks)

    def write(self, rows: np.ndarray, steps: dict[str, np.ndarray]) -> None:
        """Write ``steps[name][i]`` at row ``rows[i]``, for every field."""
        for name, array in self.arrays.items():
            array[rows] = steps[name]


def _episode_rows(blocks: tuple[int, ...], length: int) -> np.ndarray:
    """The pool's rows of an episode's ``length`` steps, held in ``blocks``."""
    return (np.array(blocks)[:, None] * BLOCK_ROWS + np.arange(BLOCK_ROWS)).ravel()[:length]


class _Episodes(NamedTuple):
    """
    The committed state of the stored episodes: each env's running episode, the batch, and the free blocks.

    :param lengths: Each env's running episode: its steps so far, stored or not
    :param holds: Whether the buffer holds it from its first step (else its steps are not stored)
    :param blocks: The blocks that hold its steps, in order
    :param current: The last of its blocks (-1: none)
    :param batch: The steps of each complete episode of the batch, in the batch's order
    :param free: The blocks no episode holds
    """

    lengths: np.ndarray
    holds: np.ndarray
    blocks: tuple[tuple[int, ...], ...]
    current: np.ndarray
    batch: tuple[int, ...]
    free: tuple[int, ...]


class EpisodeRolloutBuffer(RolloutBuffer):
    """
    Rollout buffer that hands out whole episodes only (see the module docstring).

    :param buffer_size: Steps per env allocated at first (SB3 passes ``n_steps``), at most :data:`INITIAL_ROWS`; the
        pool grows as needed
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
        size = min(max(buffer_size, 1), INITIAL_ROWS)
        super().__init__(size, observation_space, action_space, device, gae_lambda, gamma, n_envs)

    def reset(self) -> None:
        """Forget everything: the batch, the running episodes and the count of dropped episodes."""
        super(RolloutBuffer, self).reset()
        self._obs_fields = self._observation_fields()
        observation_fields = {f"obs:{key}": (shape, dtype) for key, shape, dtype in self._obs_fields}
        actions, rewards = ((self.action_dim,), np.dtype(self.action_space.dtype)), ((), np.dtype(np.float32))
        fields = {**observation_fields, "actions": actions, "rewards": rewards}
        n_blocks = self.n_envs * -(-self.buffer_size // BLOCK_ROWS)
        self._pool = _BlockPool(fields, n_blocks)
        # The batch's steps, laid end to end, by field of the pool; the rows from pos on are free.
        self._batch = {
            name: np.zeros((self.buffer_size * self.n_envs, *shape), dtype) for name, (shape, dtype) in fields.items()
        }
        no_episodes = np.zeros(self.n_envs, dtype=np.int64)
        self._episodes = _Episodes(
            no_episodes, np.zeros(self.n_envs, dtype=bool), ((),) * self.n_envs, no_episodes - 1, (), tuple(range(n_blocks))
        )
        #: Complete episodes in the batch (m)
        self.n_episodes = 0
        #: Episodes dropped because the buffer never held their start or their env was reset before they ended
        self.n_dropped_episodes = 0
        #: Whether an update has trained on the batch (it stays readable until :meth:`discard_batch`)
        self.batch_trained = False
        self._lay_out(())

    def _observation_fields(self) -> list[tuple[str, tuple[int, ...], np.dtype]]:
        """Each observation array's key (``""`` for a non-Dict space), shape of one step and dtype."""
        if isinstance(self.obs_shape, dict):
            space = self.observation_space
            assert isinstance(space, spaces.Dict)
            return [(key, shape, np.dtype(space[key].dtype)) for key, shape in self.obs_shape.items()]
        return [("", self.obs_shape, np.dtype(self.observation_space.dtype))]

    @property
    def n_running_steps(self) -> int:
        """The steps of the running episodes that the buffer holds, waiting for their episode to end."""
        return int(self._episodes.lengths[self._episodes.holds].sum())

    @property
    def nbytes(self) -> int:
        """The memory the buffer's arrays take: the pool of the running episodes' blocks, and the batch."""
        arrays = [*self._pool.arrays.values(), *self._batch.values(), self._returns, self._episode_starts, self._advantages]
        return sum(array.nbytes for array in arrays)

    @property
    def episode_returns(self) -> np.ndarray:
        """R(τ) of each episode of the batch."""
        return self.returns[self.episode_starts > 0]

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
        truncated: nothing is bootstrapped). An episode that ends joins the batch, whole.

        :param obs: Observation
        :param action: Action
        :param reward: Reward
        :param episode_start: Whether the step is the first of its episode, one per env
        :param value: Not stored (VPG computes V(s_t) at update time): must be ``None``
        :param log_prob: Not stored (VPG computes log π(a_t|s_t) at update time): must be ``None``
        :param done: Whether the step ended its episode, one per env
        """
        if self.batch_trained:
            raise RuntimeError(
                "EpisodeRolloutBuffer.add: an update has trained on the batch; call discard_batch() before collecting "
                "more, so that the new episodes make a batch of their own."
            )
        if value is not None or log_prob is not None:
            raise ValueError(
                "EpisodeRolloutBuffer.add: value and log_prob must be None: V(s_t) and log π(a_t|s_t) are computed at "
                "update time, with the parameters that the update differentiates."
            )
        steps = self._steps(obs, action, reward)
        starts = np.asarray(episode_start, dtype=bool).reshape(self.n_envs)
        dones = np.asarray(done, dtype=bool).reshape(self.n_envs)

        # Nothing that the committed state refers to is written before the last line: a step goes after the rows of its
        # episode's last block, or to a block that was free; the blocks this step frees are only reused by later ones.
        before = self._episodes
        offsets = before.lengths % BLOCK_ROWS
        special = starts | dones | ~before.holds | (offsets == 0)
        if not special.any():
            # Most steps: every env goes on with an episode the buffer holds, inside that episode's last block.
            lengths = before.lengths + 1
            self._check_length(lengths)
            self._pool.write(before.current * BLOCK_ROWS + offsets, steps)
            self._episodes = before._replace(lengths=lengths)
            return

        # Some envs start or end an episode, hold none, or fill a block: each of those on its own, in Python.
        lengths, holds, current = before.lengths + 1, before.holds.copy(), before.current.copy()
        blocks, free, batch = list(before.blocks), list(before.free), list(before.batch)
        released: list[int] = []
        n_steps, n_dropped = self.pos, 0
        events = np.flatnonzero(special)
        for env in events:
            if starts[env]:
                if before.lengths[env] > 0:  # its env was reset before the episode ended: dropped, whole
                    n_dropped += 1
                    released += before.blocks[env]
                lengths[env], holds[env], blocks[env] = 1, True, ()
            if holds[env] and (lengths[env] - 1) % BLOCK_ROWS == 0:  # a new episode, or a full block
                if not free:
                    free += self._pool.grow()
                current[env] = free.pop(0)
                blocks[env] = (*blocks[env], int(current[env]))
        self._check_length(lengths)
        if holds.all():
            self._pool.write(current * BLOCK_ROWS + (lengths - 1) % BLOCK_ROWS, steps)
        else:
            held = np.flatnonzero(holds)
            rows = current[held] * BLOCK_ROWS + (lengths[held] - 1) % BLOCK_ROWS
            self._pool.write(rows, {name: array[held] for name, array in steps.items()})
        for env in events[dones[events]]:
            if holds[env]:
                self._copy_to_batch(n_steps, _episode_rows(blocks[env], int(lengths[env])))
                n_steps += int(lengths[env])
                batch.append(int(lengths[env]))
                released += blocks[env]
            else:  # its first step was never stored
                n_dropped += 1
            lengths[env], holds[env], blocks[env] = 0, False, ()
        # The same batch object when no episode joined it: the batch laid out for the update stays laid out.
        batch_episodes = before.batch if len(batch) == len(before.batch) else tuple(batch)
        episodes = _Episodes(lengths, holds, tuple(blocks), current, batch_episodes, tuple(free + released))
        commit = (episodes, n_steps, len(batch), self.n_dropped_episodes + n_dropped, False)
        self._episodes, self.pos, self.n_episodes, self.n_dropped_episodes, self.advantages_computed = commit

    def _steps(self, obs: Observations, action: np.ndarray, reward: np.ndarray) -> dict[str, np.ndarray]:
        """One step of every env, by field of the pool, shaped ``(n_envs, ...)``."""
        observations = obs if isinstance(obs, dict) else {"": obs}
        steps = {
            f"obs:{key}": np.asarray(observations[key]).reshape((self.n_envs, *shape)) for key, shape, _ in self._obs_fields
        }
        steps["actions"] = np.asarray(action).reshape((self.n_envs, self.action_dim))
        steps["rewards"] = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        return steps

    def _check_length(self, lengths: np.ndarray) -> None:
        """Raise when an episode has lasted more than ``max_episode_steps`` steps."""
        if lengths.max() > self.max_episode_steps:
            longest = int(lengths.argmax())
            raise RuntimeError(
                f"The episode running in env {longest} has lasted more than max_episode_steps={self.max_episode_steps} "
                "steps without ending. VPG trains on whole episodes only and keeps every step until its episode ends: "
                "give the env a time limit (gymnasium.wrappers.TimeLimit) or raise max_episode_steps."
            )

    def _copy_to_batch(self, start: int, rows: np.ndarray) -> None:
        """Copy the pool's ``rows`` (an episode that has just ended) to the batch's rows from ``start`` on."""
        end = start + len(rows)
        if end > len(self._batch["rewards"]):  # grow, doubling, every row keeping its index
            size = 2 ** int(np.ceil(np.log2(end)))
            self._batch = {name: _grown(array, size) for name, array in self._batch.items()}
        for name, array in self._batch.items():
            array[start:end] = self._pool.arrays[name][rows]

    def _lay_out(self, batch: tuple[int, ...]) -> None:
        """
        The per-step quantities of the batch: the first step of each episode, and the reward-to-go of every step,
        computed once for the whole batch, vectorised.

        :param batch: The steps of each of the batch's episodes (nothing is done if they are laid out already)
        """
        if getattr(self, "_laid_out", None) is batch:
            return
        lengths = np.array(batch, dtype=np.int64)
        n_steps = int(lengths.sum())
        self._episode_starts = np.zeros(n_steps, dtype=np.float32)
        self._episode_starts[np.cumsum(lengths) - lengths] = 1.0
        last = np.zeros(n_steps)
        last[np.cumsum(lengths) - 1] = 1.0
        with np.errstate(over="ignore"):  # a return beyond float32 is reported, with the remedies, by compute_advantages
            self._returns = reward_to_go(self._batch["rewards"][:n_steps], last, self.gamma).astype(np.float32)
        self._advantages = np.zeros(n_steps, dtype=np.float32)
        self._laid_out = batch

    # SB3's rollout buffers declare these as arrays; here they are the batch, laid out when it is read.
    @property
    def observations(self) -> Observations:  # type: ignore[override]
        """The observation of each step of the batch."""
        observations = {key: self._batch[f"obs:{key}"][: self.pos] for key, _, _ in self._obs_fields}
        return observations if isinstance(self.obs_shape, dict) else observations[""]

    @property
    def actions(self) -> np.ndarray:  # type: ignore[override]
        """The action of each step of the batch."""
        return self._batch["actions"][: self.pos]

    @property
    def rewards(self) -> np.ndarray:  # type: ignore[override]
        """The reward of each step of the batch."""
        return self._batch["rewards"][: self.pos]

    @property
    def returns(self) -> np.ndarray:  # type: ignore[override]
        """The reward-to-go G_t of each step of the batch."""
        self._lay_out(self._episodes.batch)
        return self._returns

    @property
    def episode_starts(self) -> np.ndarray:  # type: ignore[override]
        """1 on the first step of each episode of the batch."""
        self._lay_out(self._episodes.batch)
        return self._episode_starts

    @property
    def advantages(self) -> np.ndarray:  # type: ignore[override]
        """The weight of each step's log π in the update, once :meth:`compute_advantages` has computed it."""
        self._lay_out(self._episodes.batch)
        return self._advantages

    def compute_advantages(
        self,
        estimator: Estimator,
        values: np.ndarray | None = None,
        normalize: bool = False,
        total: BatchTotal = this_part_only,
        batch_shape: tuple[int, int] | None = None,
    ) -> None:
        """
        Lay the batch out and write the weight of every step into ``advantages``: what :meth:`get` hands out.

        :param estimator: How the steps are weighted (:data:`~sb3_vpg.estimators.ESTIMATORS`)
        :param values: V(s_t) of the batch's steps, for an estimator that subtracts it
        :param normalize: Normalise the weights over the batch (mean 0, std 1); a one-step batch is left as it is,
            as in PPO
        :param total: The sum over the parts of a batch split across processes (:mod:`sb3_vpg.distributed`): the
            baselines' means, the normalisation's mean and std and the check of the weights are the whole batch's
        :param batch_shape: The whole batch's episodes m and steps, when this buffer holds a part of it
        """
        self._lay_out(self._episodes.batch)
        n_episodes, n_steps = (self.n_episodes, self.pos) if batch_shape is None else batch_shape
        steps = EpisodeSteps(self.rewards, self.returns, self.episode_starts, values, n_episodes, total)
        weights = estimator.weights(steps, self.gamma, self.gae_lambda)
        if normalize and n_steps > 1:
            mean = total(np.array([weights.sum()]))[0] / n_steps
            std = np.sqrt(total(np.array([np.square(weights - mean).sum()]))[0] / (n_steps - 1))
            weights = (weights - mean) / (std + 1e-8)
        self._advantages[:] = weights
        if total(np.array([np.count_nonzero(~np.isfinite(self._advantages))]))[0] > 0:
            raise ValueError(
                "The weights of log π(a_t|s_t) are not finite: the batch's rewards reach "
                f"|r| = {np.abs(self.rewards).max(initial=0.0):.3g} and its returns |R(τ)| = "
                f"{np.abs(self.episode_returns).max(initial=0.0):.3g}, beyond what float32 holds. Scale the rewards "
                "down (VecNormalize(norm_reward=True), or a wrapper such as gymnasium.wrappers.TransformReward), "
                "or set normalize_advantage=True."
            )
        self.advantages_computed = True

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Not used: nothing is bootstrapped. The reward-to-go is computed over whole episodes."""
        raise NotImplementedError(
            "EpisodeRolloutBuffer bootstraps nothing: the reward-to-go of the batch's whole episodes, and the weights "
            "of an update, are computed by compute_advantages(estimator, values)."
        )

    def extend(self, *args, **kwargs) -> None:
        """Not used: steps are added one at a time, with whether each ended its episode."""
        raise NotImplementedError("EpisodeRolloutBuffer takes one step of every env at a time: add(..., done=dones).")

    def mark_trained(self) -> None:
        """
        An update has trained on the batch: it stays readable, as SB3's buffers keep the last rollout, until
        :meth:`discard_batch` drops it at the start of the next collection; :meth:`add` refuses steps until then.
        """
        self.batch_trained = True

    def discard_batch(self) -> None:
        """Drop the batch; the running episodes stay."""
        self._episodes, self.pos, self.n_episodes, self.advantages_computed, self.batch_trained = (
            self._episodes._replace(batch=()),
            0,
            0,
            False,
            False,
        )

    def observation_chunks(self, batch_size: int | None = None) -> Generator[th.Tensor | TensorDict, None, None]:
        """
        The observations of the batch, ``batch_size`` steps at a time (all at once if ``None``).

        :param batch_size: Steps per chunk
        """
        for rows in self._chunks(batch_size):
            yield self._observations_tensor(rows)

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[EpisodeRolloutBufferSamples | DictEpisodeRolloutBufferSamples, None, None]:
        """
        The steps of the batch's complete episodes, flat, episode after episode, ``batch_size`` steps at a time (all at
        once if ``None``). :meth:`compute_advantages` must have been called since the batch last changed.

        :param batch_size: Steps per sample
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
            self.to_torch(self._batch["actions"][batch_inds].astype(np.float32, copy=False)),
            self.to_torch(self._returns[batch_inds]),
            self.to_torch(self._advantages[batch_inds]),
        )

    def _observations_tensor(self, rows: np.ndarray | slice) -> th.Tensor | TensorDict:
        """The observations of the batch's ``rows``, as a tensor (a dict of them for a Dict space)."""
        observations = {key: self.to_torch(self._batch[f"obs:{key}"][rows]) for key, _, _ in self._obs_fields}
        return observations if isinstance(self.obs_shape, dict) else observations[""]


# SB3's DictRolloutBuffer types its observations and methods for Dict observations only; EpisodeRolloutBuffer's take
# both kinds, which mypy reports as a conflict of the two bases.
class DictEpisodeRolloutBuffer(EpisodeRolloutBuffer, DictRolloutBuffer):  # type: ignore[misc]
    """:class:`EpisodeRolloutBuffer` for Dict observations (a :class:`DictRolloutBuffer`, as SB3 expects of one)."""

    samples_class = DictEpisodeRolloutBufferSamples
