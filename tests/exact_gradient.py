"""
The exact policy gradient on :class:`~sb3_vpg.envs.EnumerableMDP`: every trajectory, its probability P(τ|θ) as a
differentiable function of the policy's parameters, and the exact expectation of an estimator, by autograd over all
of them. The ground truth of the unbiasedness and variance-reduction tests.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_vpg.envs import END, N_ACTIONS, N_STATES, REWARDS, TRANSITIONS


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
    """P(τ|θ) = Π_t p(s_{t+1}|s_t, a_t) π_θ(a_t|s_t) for each trajectory, differentiable in θ."""
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
