"""
The update in chunks: the loss is a sum over steps, so the gradients of the chunks add up to the gradient of the whole
batch. One update with a few steps per chunk against the same update in one pass, for every estimator, with and
without normalisation and entropy, value steps included, on vector and image observations; computed in float64 and
compared to the float32 rounding bound of their sums (:mod:`tests.rounding`).
"""

import contextlib
from collections.abc import Callable

import gymnasium as gym
import pytest
import torch as th
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.torch_layers import FlattenExtractor, NatureCNN

from sb3_vpg import VPG
from sb3_vpg.estimators import ESTIMATORS
from sb3_vpg.vpg import CHUNK_BYTES
from tests.helpers_sb3 import TINY_CNN_POLICY, CountingEnv, StopAfterUpdates, parameters_of
from tests.rounding import TermMagnitudes, assert_each_term_detectable, assert_within, in_float64, make_float64

ESTIMATOR_OPTIONS = [
    dict(
        reward_to_go=estimator.reward_to_go,
        baseline=estimator.baseline,
        gae_lambda=0.9 if estimator.takes_gae_lambda else 1.0,
        n_value_steps=2 if estimator.needs_values else 0,
    )
    for estimator in ESTIMATORS
]
EXTRAS = {"plain": {}, "normalised-entropy": dict(normalize_advantage=True, ent_coef=0.1)}


LEARNING_RATE = 1e-4


def update(model: VPG, magnitudes: TermMagnitudes | None = None) -> dict[str, th.Tensor]:
    """
    The change of every parameter in the model's first update (plain SGD: the learning rate times the gradient),
    computed in float64; with ``magnitudes``, the update's terms are recorded.
    """
    make_float64(model)
    before = parameters_of(model)
    with magnitudes.recording() if magnitudes is not None else contextlib.nullcontext():
        model.learn(10_000, callback=StopAfterUpdates(1))
    assert model._n_updates == 1
    return {name: value - before[name] for name, value in parameters_of(model).items()}


def assert_same_update(make_model: Callable[[int | None], VPG]) -> None:
    """
    The update in chunks of 3 steps equals the update in one pass to the float32 rounding bound of their sums
    (:mod:`tests.rounding`), whose terms are measured in a third run, one step per chunk; each chunk moves the
    parameters by more than that bound, so a chunk dropped or counted twice would fail.
    """
    whole = update(make_model(None))
    per_step = make_model(1)
    steps = TermMagnitudes(per_step)
    before = parameters_of(per_step)
    update(per_step, steps)
    tolerance = steps.update_tolerance(LEARNING_RATE, {name: value.double() for name, value in before.items()})
    chunked_model = make_model(3)
    chunks = TermMagnitudes(chunked_model)
    chunked = update(chunked_model, chunks)
    assert any(change.abs().max() > 0 for change in whole.values())
    assert_within(chunked, whole, tolerance)
    assert_each_term_detectable(chunks, LEARNING_RATE, tolerance)


@pytest.mark.parametrize("options", ESTIMATOR_OPTIONS, ids=[estimator.name for estimator in ESTIMATORS])
@pytest.mark.parametrize("extras", list(EXTRAS.values()), ids=list(EXTRAS))
def test_chunked_update_equals_the_whole_batch_update(options: dict, extras: dict) -> None:
    def pendulum_model(chunk_size: int | None) -> VPG:
        policy_kwargs = dict(
            net_arch=[16], optimizer_class=th.optim.SGD, features_extractor_class=in_float64(FlattenExtractor)
        )
        kwargs = dict(n_episodes=2, chunk_size=chunk_size, policy_kwargs=policy_kwargs, seed=0, **options, **extras)
        env = TimeLimit(gym.make("Pendulum-v1").unwrapped, max_episode_steps=20)
        return VPG("MlpPolicy", env, learning_rate=LEARNING_RATE, **kwargs)

    assert_same_update(pendulum_model)


def test_chunked_update_of_images_equals_the_whole_batch_update(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU, cuDNN's convolutions round to TensorFloat-32 by default (10-bit mantissas): full precision here.
    monkeypatch.setattr(th.backends.cudnn, "allow_tf32", False)

    def image_model(chunk_size: int | None) -> VPG:
        policy_kwargs = {**TINY_CNN_POLICY, "optimizer_class": th.optim.SGD, "features_extractor_class": in_float64(NatureCNN)}
        options = dict(reward_to_go=True, baseline="value", n_value_steps=1)
        kwargs = dict(n_episodes=3, chunk_size=chunk_size, policy_kwargs=policy_kwargs, seed=0, **options)
        return VPG("CnnPolicy", CountingEnv("image", ep_length=4), learning_rate=LEARNING_RATE, **kwargs)

    assert_same_update(image_model)


def test_default_chunk_size_holds_64_mib_of_observations() -> None:
    """One chunk holds a whole batch of vectors, a few hundred frames (as float32)."""
    assert VPG("MlpPolicy", "CartPole-v1").chunk_size == CHUNK_BYTES // (4 * 4)
    model = VPG("CnnPolicy", CountingEnv("image"), policy_kwargs=TINY_CNN_POLICY)
    assert model.chunk_size == CHUNK_BYTES // (4 * 36 * 36)
