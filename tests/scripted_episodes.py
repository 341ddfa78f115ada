"""A gymnasium env whose episodes have scripted lengths and rewards, whatever the actions: returns known by hand."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ScriptedEpisodes(gym.Env):
    """
    Plays the episodes of ``episode_rewards`` in turn (cycling): episode k gives the rewards ``episode_rewards[k]``,
    one per step, and terminates after the last one, unless a ``TimeLimit`` truncates it first. The observation
    ``(tag, episode, t)`` names the step: the env's tag, the episode's index and the step's index in the episode.
    """

    observation_space = spaces.Box(low=0.0, high=np.inf, shape=(3,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, episode_rewards: list[list[float]], tag: int = 0):
        self.episode_rewards = episode_rewards
        self.tag = tag
        self.episode = -1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        rewards = self.episode_rewards[self.episode % len(self.episode_rewards)]
        reward = rewards[self.t]
        self.t += 1
        return self._observation(), reward, self.t == len(rewards), False, {}

    def _observation(self) -> np.ndarray:
        return np.array([self.tag, self.episode, self.t], dtype=np.float32)
