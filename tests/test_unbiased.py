"""
The Policy Gradient Theorem, checked numerically: the mean of many independent VPG updates equals the exact ∇J(θ).

On :class:`~sb3_vpg.envs.EnumerableMDP`, J(θ) = Σ_τ P(τ|θ) R(τ) and its gradient come from autograd over every
trajectory (:mod:`tests.exact_gradient`).
VPG runs with plain SGD at learning rate 1, so each update's parameter change *is* its gradient estimate ĝ = −∇Loss;
θ is put back before every rollout, so all updates start from the same θ. Their mean must match ∇J within
``Z_TOLERANCE`` standard errors in every component — and the test must be able to tell Eq. (4) from its look-alikes:
their exact expectations, also enumerated, lie far outside that tolerance.
"""

import numpy as np
import pytest
import torch as th

from tests.exact_gradient import all_trajectories, expected_gradient, trajectory_probabilities
from tests.policy_gradient_sampling import (
    EPISODES_PER_UPDATE,
    HORIZON,
    VALUE_BIAS,
    Z_LOOKALIKE,
    Z_TOLERANCE,
    mean_update,
    sgd_model,
)

pytestmark = pytest.mark.statistical

N_UPDATES = 3000


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_mean_update_is_the_exact_policy_gradient(gamma: float) -> None:
    model = sgd_model(gamma)
    trajectories = all_trajectories(HORIZON)
    # The MDP has what the test needs: terminated and truncated episodes, of every length up to H, summing to 1.
    assert any(t.truncated for t in trajectories) and any(not t.truncated for t in trajectories)
    assert len({len(t.actions) for t in trajectories}) == HORIZON
    with th.no_grad():
        assert trajectory_probabilities(model.policy, trajectories).sum().item() == pytest.approx(1.0, abs=1e-6)
    exact = expected_gradient(model.policy, trajectories, lambda t: t.discounted_return(gamma)).double().cpu().numpy()

    mean, standard_error = mean_update(model, N_UPDATES)

    z_scores = (mean - exact) / standard_error
    assert np.abs(z_scores).max() < Z_TOLERANCE, (mean, exact, standard_error)
    # Direction and scale, as numbers a reader can check: within a few percent of the exact gradient.
    cosine = mean @ exact / (np.linalg.norm(mean) * np.linalg.norm(exact))
    assert cosine > 0.99
    assert np.linalg.norm(mean) / np.linalg.norm(exact) == pytest.approx(1.0, abs=0.05)

    # The test's power: the expectations of the usual mistakes, computed exactly, are rejected by a wide margin.
    def bootstrapped_return(t):  # SB3's γ·V(s_H) added at a time-limit truncation
        return t.discounted_return(gamma) + (gamma ** len(t.actions) * VALUE_BIAS if t.truncated else 0.0)

    bootstrapped = expected_gradient(model.policy, trajectories, bootstrapped_return).double().cpu().numpy()
    with th.no_grad():
        probabilities = trajectory_probabilities(model.policy, trajectories).double().cpu().numpy()
    lengths = np.array([len(t.actions) for t in trajectories])

    def mean_over_steps_weight(t):
        # Dividing by the batch's number of steps instead of m: E over the other episode τ' of m / (|τ| + |τ'|).
        return t.discounted_return(gamma) * EPISODES_PER_UPDATE * float(np.sum(probabilities / (len(t.actions) + lengths)))

    mean_over_steps = expected_gradient(model.policy, trajectories, mean_over_steps_weight).double().cpu().numpy()
    for lookalike in (bootstrapped, mean_over_steps):
        assert np.abs((lookalike - exact) / standard_error).max() > Z_LOOKALIKE
