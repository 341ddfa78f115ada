"""
A pytest plugin that runs Stable-Baselines3's own test files with VPG in A2C's place: ``stable_baselines3.A2C`` is
VPG before the test modules import it, and only the tests that train A2C (now VPG) are kept. The tests whose failure
follows from what VPG is (whole episodes, no bootstrapping, no A2C-tuned budget) are expected to fail, each with its
reason; an expected failure that passes fails the run (``strict``), so the table stays true. A test whose verdict
depends on the machine's speed is skipped, with its reason: CI's verdict must not depend on the load beside it.

CI runs it on the test files of the stable-baselines3 release installed (its sdist, from PyPI):
``python -m pytest -p vpg_as_a2c tests`` in the unpacked sdist, with this folder on ``PYTHONPATH``.
"""

import pytest
import stable_baselines3
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_vpg import VPG

stable_baselines3.A2C = VPG  # type: ignore[misc]

#: The tests expected to fail with VPG in A2C's place (the start of their node ids), and why.
EXPECTED_FAILURES = {
    "tests/test_buffers.py::test_custom_rollout_buffer": (
        "passes SB3's RolloutBuffer as rollout_buffer_class: VPG takes subclasses of EpisodeRolloutBuffer only, which "
        "keep whole episodes, and says so with a TypeError"
    ),
    "tests/test_gae.py::test_gae_computation[": (
        "checks A2C's GAE with a bootstrapped value at the end of each rollout; VPG bootstraps nothing, and gae_lambda "
        "below 1 needs baseline='value' (a ValueError says so); tests/test_estimators.py checks VPG's GAE by hand"
    ),
    "tests/test_gae.py::test_infinite_horizon[True-": (
        "checks that a time-limit truncation is bootstrapped with V(s) (handle_timeout_termination=True); VPG treats "
        "it as the end of a finite-horizon episode, as Eq. (4) does"
    ),
    "tests/test_identity.py::test_discrete[": (
        "a learning run with A2C's budget and hyperparameters: 1,200 steps are one VPG update at its default batch of "
        "8 episodes of 100 steps; tests/test_learning.py trains VPG on IdentityEnv with its own budget"
    ),
    "tests/test_identity.py::test_continuous[": (
        "a learning run with A2C's budget and hyperparameters (2,000 steps: two VPG updates at its default batch)"
    ),
}

#: The tests skipped because their verdict depends on the machine's speed, not on VPG, and why.
TIMING_DEPENDENT = {
    "tests/test_logger.py::test_fps_logger[": (
        "asserts at least 100 steps per second of wall-clock, training included, with an env that sleeps 1 ms a step: "
        "a speed bound that failed once in CI (94) beside two other pytest jobs on two cores; VPG logs fps with SB3's "
        "own code, and tests/test_tensorboard.py checks the bound that does not depend on speed (at most 1,000)"
    ),
}


def _algorithms(item: pytest.Item) -> list[type]:
    """The algorithm classes a test is parametrised with."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return [value for value in params.values() if isinstance(value, type) and issubclass(value, BaseAlgorithm)]


def _trains_a2c(item: pytest.Item) -> bool:
    """Parametrised with A2C (now VPG), or not parametrised with an algorithm and naming A2C in its body."""
    algorithms = _algorithms(item)
    function = getattr(item, "function", None)
    names = function.__code__.co_names if function is not None else ()
    return VPG in algorithms or (not algorithms and "A2C" in names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = [item for item in items if _trains_a2c(item)]
    config.hook.pytest_deselected(items=[item for item in items if not _trains_a2c(item)])
    for item in kept:
        for prefix, reason in EXPECTED_FAILURES.items():
            if item.nodeid.startswith(prefix):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        for prefix, reason in TIMING_DEPENDENT.items():
            if item.nodeid.startswith(prefix):
                item.add_marker(pytest.mark.skip(reason=reason))
    items[:] = kept
