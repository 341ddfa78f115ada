"""
An MDP small enough to enumerate every trajectory, and the exact objective J(θ) = Σ_τ P(τ|θ) R(τ) over it.

Three states, two actions, stochastic transitions, an absorbing end reached with some probability (termination)
and a short horizon H enforced by gymnasium's ``TimeLimit`` (truncation). With at most (3·2)^H trajectories,
J(θ) and its exact gradient come from autograd over all of them: the ground truth against which the
policy-gradient estimators are checked (the Policy Gradient Theorem, numerically).
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.policies import ActorCriticPolicy

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


class Trajectory(NamedTuple):
    """One possible trajectory: its states and actions, rewards, the probability of its transitions and its end."""

    states: tuple[int, ...]
    actions: tuple[int, ...]
    rewards: tuple[float, ...]
    dynamics_probability: float
    truncated: bool
    last_state: int

    def discounted_return(self, gamma: float) -> float:
        """R(τ) = Σ_t γ^t r_t, from the first step."""
        return float(sum(gamma**t * reward for t, reward in enumerate(self.rewards)))


def all_trajectories(horizon: int = 3) -> list[Trajectory]:
    """Every trajectory of positive probability under a policy that gives both actions positive probability."""
    trajectories = []

    def extend(states: tuple, actions: tuple, probability: float) -> None:
        state = states[-1]
        for action in range(N_ACTIONS):
            for next_state, transition_probability in enumerate(TRANSITIONS[state, action]):
                if transition_probability == 0:
                    continue
                new_actions = (*actions, action)
                new_probability = probability * transition_probability
                if next_state == END or len(new_actions) == horizon:
                    rewards = tuple(REWARDS[s, a] for s, a in zip(states, new_actions, strict=True))
                    truncated = next_state != END
                    trajectories.append(Trajectory(states, new_actions, rewards, new_probability, truncated, next_state))
                else:
                    extend((*states, next_state), new_actions, new_probability)

    extend((0,), (), 1.0)
    return trajectories


def action_probabilities(policy: ActorCriticPolicy) -> th.Tensor:
    """π_θ(a|s) for every state and action, shape (N_STATES, N_ACTIONS), differentiable in θ."""
    distribution = policy.get_distribution(th.arange(N_STATES, device=policy.device))
    return distribution.distribution.probs


def trajectory_probabilities(policy: ActorCriticPolicy, trajectories: list[Trajectory]) -> th.Tensor:
    """P(τ|θ) = Π_t p(s_{t+1}|s_t, a_t) π_θ(a_t|s_t) for each trajectory (Eq. 2 of the lecture), differentiable in θ."""
    probabilities = action_probabilities(policy)
    return th.stack(
        [
            trajectory.dynamics_probability * th.prod(probabilities[list(trajectory.states), list(trajectory.actions)])
            for trajectory in trajectories
        ]
    )


def expected_gradient(
    policy: ActorCriticPolicy, trajectories: list[Trajectory], weight: Callable[[Trajectory], float]
) -> th.Tensor:
    """
    Σ_τ ∇_θ P(τ|θ) · weight(τ): with ``weight = R`` it is ∇J(θ) (Eq. 1); with another weight, the expectation of the
    estimator that weights every ∇ log π(a_t|s_t) of τ by it. Flat over the action network's parameters.

    :param policy: The policy, its action network giving θ
    :param trajectories: Every trajectory (:func:`all_trajectories`)
    :param weight: The weight of each trajectory, treated as a constant
    """
    parameters = list(policy.action_net.parameters())
    weights = th.tensor([weight(trajectory) for trajectory in trajectories], dtype=th.float32, device=policy.device)
    surrogate = (trajectory_probabilities(policy, trajectories) * weights).sum()
    return th.cat([gradient.flatten() for gradient in th.autograd.grad(surrogate, parameters)])


def expected_step_gradient(
    policy: ActorCriticPolicy, trajectories: list[Trajectory], step_weights: Callable[[Trajectory], Sequence[float]]
) -> th.Tensor:
    """
    Σ_τ P(τ|θ) Σ_t ∇_θ log π_θ(a_t|s_t) · w_t(τ): the expectation of the estimator that weights each step's
    ∇ log π by its own weight (the reward-to-go, an advantage, ...). Flat over the action network's parameters.

    :param policy: The policy, its action network giving θ
    :param trajectories: Every trajectory (:func:`all_trajectories`)
    :param step_weights: The weight of each step of a trajectory, treated as constants
    """
    parameters = list(policy.action_net.parameters())
    with th.no_grad():
        probabilities = trajectory_probabilities(policy, trajectories)
    index, states, actions, weights = [], [], [], []
    for i, trajectory in enumerate(trajectories):
        index += [i] * len(trajectory.actions)
        states += trajectory.states
        actions += trajectory.actions
        weights += list(step_weights(trajectory))
    log_probabilities = th.log(action_probabilities(policy))[states, actions]
    weights_tensor = th.tensor(weights, dtype=th.float32, device=policy.device)
    surrogate = (probabilities[index] * log_probabilities * weights_tensor).sum()
    return th.cat([gradient.flatten() for gradient in th.autograd.grad(surrogate, parameters)])
