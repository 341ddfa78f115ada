"""
The opt-in variance reductions against exact expectations on :class:`~sb3_vpg.envs.EnumerableMDP`
(:mod:`tests.exact_gradient`).

The machinery is that of ``test_unbiased.py`` (:mod:`tests.policy_gradient_sampling`): many SGD updates at learning
rate 1 from the same θ, their mean against an expectation enumerated over every trajectory — here, for batch-
dependent estimators, over every *pair* of trajectories (m = 2 episodes per update). Where theory says an option is
unbiased, the mean must match ∇J; where it is biased, the mean must match the option's own exact expectation, and
that expectation must lie far from ∇J: the bias is measured, not just asserted to exist. The step weights are
written out here from the trajectories, independently of :mod:`sb3_vpg.estimators`.
"""

from collections.abc import Callable

import numpy as np
import pytest
import torch as th

from sb3_vpg import VPG
from sb3_vpg.envs import N_STATES, make_enumerable_mdp
from tests.exact_gradient import (
    Trajectory,
    all_trajectories,
    expected_gradient,
    expected_step_gradient,
    trajectory_probabilities,
)
from tests.policy_gradient_sampling import HORIZON, Z_LOOKALIKE, Z_TOLERANCE, mean_update, sgd_model
from tests.scripted_episodes import ScriptedEpisodes

pytestmark = pytest.mark.statistical

#: Updates averaged per test; more with the arbitrary value head, which makes ĝ noisier.
N_UPDATES = 1200
N_UPDATES_VALUE = 1500
TRAJECTORIES = all_trajectories(HORIZON)

PairWeights = Callable[[Trajectory, Trajectory], list[float]]


def returns_to_go(trajectory: Trajectory, gamma: float) -> list[float]:
    """G_t = Σ_{t'≥t} γ^(t'−t) r_t' for each step t."""
    rewards = trajectory.rewards
    return [sum(gamma ** (k - t) * rewards[k] for k in range(t, len(rewards))) for t in range(len(rewards))]


def state_values(model: VPG) -> np.ndarray:
    """V(s) of the model's value head for each state."""
    with th.no_grad():
        return model.policy.predict_values(th.arange(N_STATES, device=model.device)).flatten().double().cpu().numpy()


def arbitrary_value_head(model: VPG, seed: int = 1) -> np.ndarray:
    """Give the value head arbitrary non-zero weights (V(s) far from the true values); return V(s)."""
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        model.policy.value_net.weight.copy_(3.0 * th.randn(model.policy.value_net.weight.shape, generator=generator))
    return state_values(model)


def pair_expectation(model: VPG, weights: PairWeights) -> np.ndarray:
    """
    E[ĝ] of an estimator whose weights depend on the whole batch of m = 2 episodes: by symmetry it is
    Σ_τ P(τ) Σ_t ∇log π(a_t|s_t) w̄_t(τ) with w̄_t(τ) = Σ_τ' P(τ') w_t(τ | batch τ, τ').

    :param model: The model, its action network giving θ
    :param weights: The weights of the first episode's steps in the batch (first, second)
    """
    with th.no_grad():
        probabilities = trajectory_probabilities(model.policy, TRAJECTORIES).double().cpu().numpy()
    averaged = {
        first: np.sum([p * np.array(weights(first, second)) for p, second in zip(probabilities, TRAJECTORIES, strict=True)], 0)
        for first in TRAJECTORIES
    }
    return step_expectation(model, lambda t: averaged[t])


def step_expectation(model: VPG, step_weights: Callable[[Trajectory], list[float]]) -> np.ndarray:
    """E[ĝ] of the estimator weighting each step by ``step_weights`` (per trajectory), in float64."""
    return expected_step_gradient(model.policy, TRAJECTORIES, step_weights).double().cpu().numpy()


def exact_gradient(model: VPG, gamma: float) -> np.ndarray:
    """∇J(θ) by autograd over every trajectory."""
    return expected_gradient(model.policy, TRAJECTORIES, lambda t: t.discounted_return(gamma)).double().cpu().numpy()


def assert_matches(mean: np.ndarray, standard_error: np.ndarray, expected: np.ndarray) -> None:
    """The sampled mean matches ``expected`` within Z_TOLERANCE standard errors in every component."""
    z_scores = (mean - expected) / standard_error
    assert np.abs(z_scores).max() < Z_TOLERANCE, (mean, expected, standard_error)


def assert_told_apart(standard_error: np.ndarray, expected: np.ndarray, other: np.ndarray) -> None:
    """``other`` lies more than Z_LOOKALIKE standard errors from ``expected``: the test can tell them apart."""
    assert np.abs((other - expected) / standard_error).max() > Z_LOOKALIKE


def relative_bias(expected: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """‖E[ĝ]‖ / ‖∇J‖ and the cosine between them."""
    ratio = np.linalg.norm(expected) / np.linalg.norm(exact)
    return float(ratio), float(expected @ exact / (np.linalg.norm(expected) * np.linalg.norm(exact)))


def test_step_weights_of_whole_returns_give_the_exact_gradient() -> None:
    """The log-derivative trick, exactly: Σ_τ P Σ_t ∇log π · R(τ) is autograd's ∇ Σ_τ P R(τ)."""
    model = sgd_model(0.8)
    exact = exact_gradient(model, 0.8)
    np.testing.assert_allclose(
        step_expectation(model, lambda t: [t.discounted_return(0.8)] * len(t.actions)), exact, atol=1e-6
    )


def test_reward_to_go_is_unbiased() -> None:
    """Causality (γ = 1): E[Σ_t ∇log π_t G_t] = ∇J, exactly by enumeration and within sampling error for VPG."""
    model = sgd_model(1.0, reward_to_go=True)
    exact = exact_gradient(model, 1.0)
    np.testing.assert_allclose(step_expectation(model, lambda t: returns_to_go(t, 1.0)), exact, atol=1e-6)

    mean, standard_error = mean_update(model, N_UPDATES)

    assert_matches(mean, standard_error, exact)
    # Power: the reward-to-go that leaves out r_t itself (an off-by-one) is rejected.
    after = step_expectation(model, lambda t: [*returns_to_go(t, 1.0)[1:], 0.0])
    assert_told_apart(standard_error, exact, after)


@pytest.mark.parametrize("reward_to_go", [True, False])
def test_state_value_baseline_is_unbiased(reward_to_go: bool) -> None:
    """
    Any V(s_t) keeps E[ĝ] = ∇J, here an arbitrary value head far from the true values (γ = 1, λ = 1: G_t − V(s_t),
    or R(τ) − V(s_t)). The value head takes its own SGD step too; only the action network's change is measured.
    """
    model = sgd_model(1.0, reward_to_go=reward_to_go, baseline="value")
    values = arbitrary_value_head(model)
    assert np.abs(values).min() > 1.0
    exact = exact_gradient(model, 1.0)

    mean, standard_error = mean_update(model, N_UPDATES_VALUE)

    assert_matches(mean, standard_error, exact)

    # Power: V of the *next* state depends on the action taken, and is rejected.
    def next_state_baseline(t: Trajectory) -> list[float]:
        weights = returns_to_go(t, 1.0) if reward_to_go else [t.discounted_return(1.0)] * len(t.actions)
        next_values = [values[s] for s in t.states[1:]] + [0.0 if not t.truncated else values[t.last_state]]
        return [w - v for w, v in zip(weights, next_values, strict=True)]

    assert_told_apart(standard_error, exact, step_expectation(model, next_state_baseline))


@pytest.mark.parametrize("reward_to_go", [True, False])
def test_mean_baseline_shrinks_the_gradient_by_m_minus_1_over_m(reward_to_go: bool) -> None:
    """
    The batch-mean baseline includes the sample itself: E[ĝ] = ((m − 1)/m) ∇J, half of ∇J for m = 2, same direction.
    b_t is the mean over the m episodes of the return from step t (R(τ) at t = 0), 0 for an episode already over.
    """
    model = sgd_model(1.0, reward_to_go=reward_to_go, baseline="mean")
    exact = exact_gradient(model, 1.0)

    def weight_at(t: Trajectory, step: int) -> float:
        if reward_to_go:
            to_go = returns_to_go(t, 1.0)
            return to_go[step] if step < len(to_go) else 0.0
        return t.discounted_return(1.0)

    def batch_mean(first: Trajectory, second: Trajectory) -> list[float]:
        return [
            weight_at(first, step) - (weight_at(first, step) + weight_at(second, step)) / 2
            for step in range(len(first.actions))
        ]

    expected = pair_expectation(model, batch_mean)
    np.testing.assert_allclose(expected, exact / 2, atol=1e-6)

    mean, standard_error = mean_update(model, N_UPDATES)

    assert_matches(mean, standard_error, expected)
    assert_told_apart(standard_error, expected, exact)


@pytest.mark.parametrize(
    "reward_to_go, expected_weights",
    [
        # R(τ) = 3, 3 and 5: b = (3 + 5)/2 = 4, the mean over the episodes. The mean over the steps, 11/3, would
        # make the weights average 0.
        (False, [3 - 4, 3 - 4, 5 - 4]),
        # Reward-to-go 3, 2 | 5: b_0 = (3 + 5)/2 = 4, b_1 = (2 + 0)/2 = 1 (the second episode is over at t = 1).
        (True, [3 - 4, 2 - 1, 5 - 4]),
    ],
)
def test_mean_baseline_by_hand(reward_to_go: bool, expected_weights: list[float]) -> None:
    """The batch-mean baseline's weights on two scripted episodes, rewards [1, 2] and [5], read from the logs."""
    model = VPG("MlpPolicy", ScriptedEpisodes([[1.0, 2.0], [5.0]]), n_episodes=2, reward_to_go=reward_to_go, baseline="mean")
    model.learn(3)
    logged = model.logger.name_to_value
    assert logged["train/advantage_mean"] == pytest.approx(np.mean(expected_weights))
    assert logged["train/advantage_std"] == pytest.approx(np.std(expected_weights, ddof=1))


def test_normalisation_is_biased() -> None:
    """
    ``normalize_advantage`` standardises the weights over the batch's steps: E[ĝ] is neither ∇J nor a multiple of it.
    Its exact expectation (by enumeration over pairs) is what VPG's updates average to.
    """
    model = sgd_model(1.0, normalize_advantage=True)
    exact = exact_gradient(model, 1.0)

    def normalised(first: Trajectory, second: Trajectory) -> list[float]:
        weights = np.array([t.discounted_return(1.0) for t in (first, second) for _ in t.actions])
        standardised = (weights - weights.mean()) / (weights.std(ddof=1) + 1e-8)
        return list(standardised[: len(first.actions)])

    expected = pair_expectation(model, normalised)
    ratio, cosine = relative_bias(expected, exact)
    # Measured (docs, "Which options keep E[ĝ] = ∇J"): ‖E[ĝ]‖ ≈ 0.28 ‖∇J‖, cosine ≈ 0.99: mostly a smaller step.
    assert ratio == pytest.approx(0.279, abs=0.001) and cosine == pytest.approx(0.989, abs=0.001)

    mean, standard_error = mean_update(model, N_UPDATES)

    assert_matches(mean, standard_error, expected)
    assert_told_apart(standard_error, expected, exact)


def test_gae_below_one_is_biased_by_a_wrong_value() -> None:
    """
    GAE(λ < 1) bootstraps on V: with V ≠ V^π its expectation moves away from ∇J (arbitrary V, γ = 1), the more so
    the smaller λ. Nothing of V enters beyond the last step, truncated or not (finite horizon). VPG's updates are
    checked at λ = 0, where the bias is largest; the bias at other λ is enumerated.
    """
    model = sgd_model(1.0, reward_to_go=True, baseline="value", gae_lambda=0.0)
    values = arbitrary_value_head(model)
    exact = exact_gradient(model, 1.0)

    def gae(gae_lambda: float) -> Callable[[Trajectory], list[float]]:
        def advantages(t: Trajectory) -> list[float]:
            state_value = [values[s] for s in t.states] + [0.0]
            deltas = [t.rewards[k] + state_value[k + 1] - state_value[k] for k in range(len(t.rewards))]
            return [sum(gae_lambda ** (k - i) * deltas[k] for k in range(i, len(deltas))) for i in range(len(deltas))]

        return advantages

    # Measured (docs, "Which options keep E[ĝ] = ∇J"): ‖E[ĝ]‖ / ‖∇J‖ and the cosine, for λ = 0, 0.5, 0.97 and 1 (unbiased).
    measured = [relative_bias(step_expectation(model, gae(gae_lambda)), exact) for gae_lambda in (0.0, 0.5, 0.97, 1.0)]
    np.testing.assert_allclose(measured, [(2.473, 0.879), (1.932, 0.925), (1.060, 0.999), (1.0, 1.0)], atol=1e-3)
    expected = step_expectation(model, gae(0.0))

    mean, standard_error = mean_update(model, N_UPDATES)

    assert_matches(mean, standard_error, expected)
    assert_told_apart(standard_error, expected, exact)


def test_discounted_reward_to_go_drops_gamma_to_the_t() -> None:
    """
    With γ < 1 the reward-to-go G_t = Σ_{t'≥t} γ^(t'−t) r_t' is not causality applied to R(τ) = Σ_t γ^t r_t: that
    would be γ^t G_t. Like A2C, PPO and Spinning Up, VPG drops γ^t, so E[ĝ] is not ∇J of the discounted objective.
    """
    gamma = 0.5
    model = sgd_model(gamma, reward_to_go=True)
    exact = exact_gradient(model, gamma)
    expected = step_expectation(model, lambda t: returns_to_go(t, gamma))
    # Causality with the γ^t kept is ∇J exactly.
    discounted = step_expectation(model, lambda t: [gamma**k * g for k, g in enumerate(returns_to_go(t, gamma))])
    np.testing.assert_allclose(discounted, exact, atol=1e-6)
    # Measured (docs, "Which options keep E[ĝ] = ∇J"): ‖E[ĝ]‖ ≈ 1.33 ‖∇J‖, cosine ≈ 0.93 at γ = 0.5.
    assert relative_bias(expected, exact) == pytest.approx((1.329, 0.935), abs=1e-3)

    mean, standard_error = mean_update(model, N_UPDATES)

    assert_matches(mean, standard_error, expected)
    assert_told_apart(standard_error, expected, exact)


def test_mean_baseline_needs_two_episodes() -> None:
    with pytest.raises(ValueError, match="baseline='mean' needs n_episodes >= 2"):
        VPG("MlpPolicy", make_enumerable_mdp(HORIZON), n_episodes=1, baseline="mean")
