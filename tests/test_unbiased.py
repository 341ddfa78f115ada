"""
The Policy Gradient Theorem, checked numerically: the mean of many independent VPG updates equals the exact ∇J(θ).

On :mod:`sb3_vpg.enumerable_mdp`, J(θ) = Σ_τ P(τ|θ) R(τ) and its gradient come from autograd over every trajectory.
VPG runs with plain SGD at learning rate 1, so each update's parameter change *is* its gradient estimate ĝ = −∇Loss;
θ is put back before every rollout, so all updates start from the same θ. Their mean must match ∇J within
``Z_TOLERANCE`` standard errors in every component — and the test must be able to tell Eq. (4) from its look-alikes:
their exact expectations, also enumerated, lie far outside that tolerance.
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_vpg import VPG
from sb3_vpg.enumerable_mdp import all_trajectories, expected_gradient, make_enumerable_mdp, trajectory_probabilities

HORIZON = 3
N_UPDATES = 3000
EPISODES_PER_UPDATE = 2
#: Largest accepted |mean − ∇J| / standard error over the 8 components (two-sided p ≈ 6e-5 each under the null).
Z_TOLERANCE = 4.0
#: The look-alikes' expectations must lie this many standard errors away, so that the test can tell them apart.
Z_LOOKALIKE = 10.0
VALUE_BIAS = 10.0


class ResetParameters(BaseCallback):
    """Record each update's parameter change, then put θ back, so that every update starts from θ0."""

    def __init__(self, parameters: list[th.nn.Parameter]):
        super().__init__()
        self.parameters = parameters
        self.start = th.cat([p.detach().flatten() for p in parameters]).clone()
        self.changes: list[th.Tensor] = []

    def record_change(self) -> None:
        current = th.cat([p.detach().flatten() for p in self.parameters])
        if not th.equal(current, self.start):
            self.changes.append(current - self.start)

    def _on_rollout_start(self) -> None:
        self.record_change()
        with th.no_grad():
            offset = 0
            for parameter in self.parameters:
                parameter.copy_(self.start[offset : offset + parameter.numel()].view_as(parameter))
                offset += parameter.numel()

    def _on_step(self) -> bool:
        return True


def sgd_model(gamma: float, seed: int = 0) -> VPG:
    """VPG with plain SGD at learning rate 1 on the enumerable MDP, θ0 random, and a value head far from zero."""
    model = VPG(
        "MlpPolicy",
        make_enumerable_mdp(HORIZON),
        learning_rate=1.0,
        n_episodes=EPISODES_PER_UPDATE,
        gamma=gamma,
        policy_kwargs=dict(net_arch=[], optimizer_class=th.optim.SGD),
        seed=seed,
    )
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        model.policy.action_net.weight.copy_(th.randn(model.policy.action_net.weight.shape, generator=generator))
        model.policy.action_net.bias.copy_(th.randn(model.policy.action_net.bias.shape, generator=generator))
        # Any value estimate entering R(τ) (SB3 bootstraps truncations) would shift the estimate by ±VALUE_BIAS.
        model.policy.value_net.bias.fill_(VALUE_BIAS)
    return model


def mean_update(model: VPG) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of N_UPDATES independent updates from the same θ."""
    recorder = ResetParameters(list(model.policy.action_net.parameters()))
    while len(recorder.changes) < N_UPDATES:
        model.learn(total_timesteps=1_000_000, callback=[recorder, StopAfter(recorder)], reset_num_timesteps=False)
    changes = th.stack(recorder.changes[:N_UPDATES]).double().numpy()
    return changes.mean(axis=0), changes.std(axis=0, ddof=1) / np.sqrt(len(changes))


class StopAfter(BaseCallback):
    """Stop learning once enough updates have been recorded."""

    def __init__(self, recorder: ResetParameters):
        super().__init__()
        self.recorder = recorder

    def _on_step(self) -> bool:
        return len(self.recorder.changes) < N_UPDATES


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_mean_update_is_the_exact_policy_gradient(gamma: float) -> None:
    model = sgd_model(gamma)
    trajectories = all_trajectories(HORIZON)
    # The MDP has what the test needs: terminated and truncated episodes, of every length up to H, summing to 1.
    assert any(t.truncated for t in trajectories) and any(not t.truncated for t in trajectories)
    assert len({len(t.actions) for t in trajectories}) == HORIZON
    with th.no_grad():
        assert trajectory_probabilities(model.policy, trajectories).sum().item() == pytest.approx(1.0, abs=1e-6)
    exact = expected_gradient(model.policy, trajectories, lambda t: t.discounted_return(gamma)).double().numpy()

    mean, standard_error = mean_update(model)

    z_scores = (mean - exact) / standard_error
    assert np.abs(z_scores).max() < Z_TOLERANCE, (mean, exact, standard_error)
    # Direction and scale, as numbers a reader can check: within a few percent of the exact gradient.
    cosine = mean @ exact / (np.linalg.norm(mean) * np.linalg.norm(exact))
    assert cosine > 0.99
    assert np.linalg.norm(mean) / np.linalg.norm(exact) == pytest.approx(1.0, abs=0.05)

    # The test's power: the expectations of the usual mistakes, computed exactly, are rejected by a wide margin.
    def bootstrapped_return(t):  # SB3's γ·V(s_H) added at a time-limit truncation
        return t.discounted_return(gamma) + (gamma ** len(t.actions) * VALUE_BIAS if t.truncated else 0.0)

    bootstrapped = expected_gradient(model.policy, trajectories, bootstrapped_return).double().numpy()
    with th.no_grad():
        probabilities = trajectory_probabilities(model.policy, trajectories).double().numpy()
    lengths = np.array([len(t.actions) for t in trajectories])

    def mean_over_steps_weight(t):
        # Dividing by the batch's number of steps instead of m: E over the other episode τ' of m / (|τ| + |τ'|).
        return t.discounted_return(gamma) * EPISODES_PER_UPDATE * float(np.sum(probabilities / (len(t.actions) + lengths)))

    mean_over_steps = expected_gradient(model.policy, trajectories, mean_over_steps_weight).double().numpy()
    for lookalike in (bootstrapped, mean_over_steps):
        assert np.abs((lookalike - exact) / standard_error).max() > Z_LOOKALIKE
