"""
Environments for checking policy-gradient estimators exactly.

:class:`EnumerableMDP` is small enough to enumerate every trajectory: three states, two actions, stochastic
transitions, an absorbing end reached with some probability (termination) and a short horizon H enforced by
gymnasium's ``TimeLimit`` (truncation). With at most (3·2)^H trajectories, the objective J(θ) = Σ_τ P(τ|θ) R(τ) and
its exact gradient can be computed over all of them (as sb3-vpg's own tests do), and an estimator's mean compared
with it: the Policy Gradient Theorem, numerically.
"""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

N_STATES = 3
N_ACTIONS = 2
#: TRANSITIONS[s, a] = probabilities of the next state 0, 1, 2, or of the end of the episode (last column).
TRANSITIONS = np.array(
    [
        [[0.2, 0.5, 0.3, 0.0], [0.0, 0.3, 0.4, 0.3]],
        [[0.5, 0.0, 0.3, 0.2], [0.1, 0.6, 0.0, 0.3]],
        [[0.3, 0.3, 0.2, 0.2], [0.0, 0.0, 0.5, 0.5]],
    ]
)
#: REWARDS[s, a] = reward of taking action a in state s.
REWARDS = np.array([[1.0, -0.5], [2.0, 0.0], [-1.0, 3.0]])
END = N_STATES


class EnumerableMDP(gym.Env):
    """The MDP of :data:`TRANSITIONS` and :data:`REWARDS`, starting in state 0; observations are the state index."""

    observation_space = spaces.Discrete(N_STATES)
    action_space = spaces.Discrete(N_ACTIONS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.state = 0
        return self.state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        reward = REWARDS[self.state, action]
        next_state = int(self.np_random.choice(N_STATES + 1, p=TRANSITIONS[self.state, action]))
        terminated = next_state == END
        # The observation after the end is never acted on: any state does.
        self.state = 0 if terminated else next_state
        return self.state, float(reward), terminated, False, {}


def make_enumerable_mdp(horizon: int = 3) -> gym.Env:
    """:class:`EnumerableMDP` truncated after ``horizon`` steps by gymnasium's ``TimeLimit``."""
    return TimeLimit(EnumerableMDP(), max_episode_steps=horizon)
