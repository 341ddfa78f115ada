"""Shared helpers of the SB3-surface tests: tiny real gymnasium envs, a log recorder and parameter comparisons."""

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.type_aliases import TensorDict

from sb3_vpg import VPG

#: The smallest networks that still exercise the code: every test model uses them.
TINY_POLICY = {"net_arch": [8]}
#: A small NatureCNN output, for the image and Dict-with-image tests.
TINY_CNN_POLICY = {"net_arch": [8], "features_extractor_kwargs": {"features_dim": 8}}
TINY_MULTI_INPUT_POLICY = {"net_arch": [8], "features_extractor_kwargs": {"cnn_output_dim": 8}}


class CountingEnv(gym.Env):
    """
    An env whose observations say where they come from: every key of the observation holds the env's ``index``, the
    episode number and the step ``t`` in it, so a test can check that stored observations are in order and intact.

    :param kind: ``"vector"`` (Box), ``"image"`` (uint8 image) or ``"dict"`` (image, vector and Discrete keys)
    :param ep_length: Steps per episode (the last one is a truncation)
    :param index: A number identifying this env among the vectorised ones
    :param channel_first: Image layout
    :param action_space: The action space (Discrete(2) by default)
    """

    IMAGE_SIZE = 36  # the smallest image NatureCNN accepts

    def __init__(
        self,
        kind: str = "vector",
        ep_length: int = 5,
        index: int = 0,
        channel_first: bool = False,
        action_space: spaces.Space | None = None,
    ):
        super().__init__()
        self.kind = kind
        self.ep_length = ep_length
        self.index = index
        shape = (1, self.IMAGE_SIZE, self.IMAGE_SIZE) if channel_first else (self.IMAGE_SIZE, self.IMAGE_SIZE, 1)
        vector = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        image = spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        if kind == "vector":
            self.observation_space: spaces.Space = vector
        elif kind == "image":
            self.observation_space = image
        else:
            self.observation_space = spaces.Dict({"img": image, "vec": vector, "step": spaces.Discrete(1000)})
        self.action_space = action_space if action_space is not None else spaces.Discrete(2)
        self.episode = -1
        self.t = 0

    def _obs(self) -> Any:
        vector = np.array([self.index, self.episode, self.t], dtype=np.float32)
        image_space = self.observation_space["img"] if self.kind == "dict" else self.observation_space
        image = np.full(image_space.shape, self.t % 256, dtype=np.uint8)
        if self.kind == "vector":
            return vector
        if self.kind == "image":
            return image
        return {"img": image, "vec": vector, "step": self.t}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), float(self.t), False, self.t >= self.ep_length, {}


class FaultyEnv(gym.Wrapper):
    """
    Wraps an env: its ``fault_at``-th call of ``step`` raises ``error`` (once), or, from that call on, the reward or
    the observation is spoilt with a non-finite value.

    :param env: The env to wrap
    :param fault_at: The 1-based number of the ``step`` call that goes wrong
    :param error: An exception to raise
    :param reward: A reward to return instead of the env's
    :param observation_key: Spoil the observation (the key of a Dict observation, or ``""`` for an array) with ``value``
    :param value: The non-finite value written into the observation
    """

    def __init__(
        self,
        env: gym.Env,
        fault_at: int,
        error: BaseException | None = None,
        reward: float | None = None,
        observation_key: str | None = None,
        value: float = np.nan,
    ):
        super().__init__(env)
        self.fault_at = fault_at
        self.error = error
        self.reward = reward
        self.observation_key = observation_key
        self.value = value
        self.n_steps = 0

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.n_steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.error is not None and self.n_steps == self.fault_at:
            raise self.error
        if self.n_steps >= self.fault_at:
            if self.reward is not None:
                reward = self.reward
            if self.observation_key is not None:
                if isinstance(obs, dict):
                    obs = {**obs, self.observation_key: np.full_like(obs[self.observation_key], self.value)}
                else:
                    obs = np.full_like(obs, self.value)
        return obs, reward, terminated, truncated, info


class ActionRecorder(gym.Wrapper):
    """Records every action the env receives."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.actions: list[np.ndarray] = []

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.actions.append(np.array(action, copy=True))
        return self.env.step(action)


class StopAfterUpdates(BaseCallback):
    """
    Stops ``learn`` at the first step after ``n_updates`` updates (or skipped updates) of the model: one full batch
    each, whatever the budget given to ``learn``.

    :param n_updates: The updates to let happen
    """

    def __init__(self, n_updates: int = 1) -> None:
        super().__init__()
        self.n_updates = n_updates

    def _on_step(self) -> bool:
        return self.model._n_updates + self.model._n_skipped_updates < self.n_updates


class RecordingFormat(KVWriter):
    """An SB3 logger output that keeps every dumped key-value dict."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.records.append(dict(key_values))

    def values(self, key: str) -> list[Any]:
        """Every value dumped under ``key``, in order."""
        return [record[key] for record in self.records if key in record]


def recording_logger() -> tuple[Logger, RecordingFormat]:
    """An SB3 logger that records what is dumped, to be given to ``model.set_logger``."""
    recorder = RecordingFormat()
    return Logger(folder=None, output_formats=[recorder]), recorder


def parameters_of(model: BaseAlgorithm) -> dict[str, th.Tensor]:
    """A copy of the policy's weights."""
    return {name: value.detach().clone() for name, value in model.policy.state_dict().items()}


def same_parameters(first: dict[str, th.Tensor], second: dict[str, th.Tensor]) -> bool:
    """Whether two copies of a policy's weights are equal, entry by entry."""
    return first.keys() == second.keys() and all(th.equal(first[name], second[name]) for name in first)


def changed_weights(before: dict[str, th.Tensor], after: dict[str, th.Tensor]) -> list[str]:
    """The names of the float weights that differ between two copies."""
    return [name for name in before if before[name].is_floating_point() and not th.equal(before[name], after[name])]


class RecordedBatch(NamedTuple):
    """What one update trained on: the batch's steps, flat, episode after episode, and its number of episodes m."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    returns: th.Tensor
    advantages: th.Tensor
    rewards: np.ndarray
    episode_starts: np.ndarray
    n_episodes: int


def record_batches(model: VPG) -> list[RecordedBatch]:
    """
    Keep every batch an update trains on: recorded (all of ``get()``'s samples at once) when the update, its step
    taken, marks it trained with the buffer's real ``mark_trained``; an update that fails before never marks it. An
    update interrupted just after its commit marks it twice: recorded once.
    """
    batches: list[RecordedBatch] = []
    buffer = model.rollout_buffer
    mark_trained = buffer.mark_trained
    recorded: list[tuple[int, ...]] = []  # the episodes of the last batch recorded, the buffer's own tuple

    def recording() -> None:
        if not recorded or recorded[-1] is not buffer._episodes.batch:
            recorded[:] = [buffer._episodes.batch]
            rows = slice(0, buffer.pos)
            samples = next(buffer.get())
            episodes = (buffer.rewards[rows].copy(), buffer.episode_starts[rows].copy(), buffer.n_episodes)
            batches.append(RecordedBatch(*samples, *episodes))
        mark_trained()

    buffer.mark_trained = recording  # type: ignore[method-assign]
    return batches
