"""
The update in chunks: the loss is a sum over steps, so the gradients of the chunks add up to the gradient of the whole
batch. One update with a few steps per chunk against the same update in one pass, for every estimator, with and
without normalisation and entropy, value steps included, on vector and image observations.
"""

import pytest
import torch as th

from sb3_vpg import VPG
from sb3_vpg.estimators import ESTIMATORS
from sb3_vpg.vpg import CHUNK_BYTES
from tests.helpers_sb3 import TINY_CNN_POLICY, CountingEnv, StopAfterUpdates, parameters_of

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


def update(model: VPG) -> dict[str, th.Tensor]:
    """The change of every parameter in the model's first update (plain SGD: the learning rate times the gradient)."""
    before = parameters_of(model)
    model.learn(10_000, callback=StopAfterUpdates(1))
    assert model._n_updates == 1
    return {name: value - before[name] for name, value in parameters_of(model).items()}


def assert_same_update(first: dict[str, th.Tensor], second: dict[str, th.Tensor]) -> None:
    """The same change of every parameter, to float32 rounding; and not no change at all."""
    assert any(change.abs().max() > 0 for change in first.values())
    for name, change in first.items():
        th.testing.assert_close(second[name], change, rtol=1e-4, atol=1e-5 * float(change.abs().max()), msg=name)


@pytest.mark.parametrize("options", ESTIMATOR_OPTIONS, ids=[estimator.name for estimator in ESTIMATORS])
@pytest.mark.parametrize("extras", list(EXTRAS.values()), ids=list(EXTRAS))
def test_chunked_update_equals_the_whole_batch_update(options: dict, extras: dict) -> None:
    def pendulum_update(chunk_size: int | None) -> dict[str, th.Tensor]:
        policy_kwargs = dict(net_arch=[16], optimizer_class=th.optim.SGD)
        kwargs = dict(n_episodes=3, chunk_size=chunk_size, policy_kwargs=policy_kwargs, seed=0, **options, **extras)
        return update(VPG("MlpPolicy", "Pendulum-v1", learning_rate=1e-6, **kwargs))

    assert_same_update(pendulum_update(None), pendulum_update(3))


def test_chunked_update_of_images_equals_the_whole_batch_update(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU, cuDNN's convolutions round to TensorFloat-32 by default (10-bit mantissas): full float32 here.
    monkeypatch.setattr(th.backends.cudnn, "allow_tf32", False)

    def image_update(chunk_size: int | None) -> dict[str, th.Tensor]:
        policy_kwargs = {**TINY_CNN_POLICY, "optimizer_class": th.optim.SGD}
        options = dict(reward_to_go=True, baseline="value", n_value_steps=1)
        kwargs = dict(n_episodes=3, chunk_size=chunk_size, policy_kwargs=policy_kwargs, seed=0, **options)
        return update(VPG("CnnPolicy", CountingEnv("image", ep_length=4), learning_rate=1e-4, **kwargs))

    assert_same_update(image_update(None), image_update(5))


def test_default_chunk_size_holds_64_mib_of_observations() -> None:
    """One chunk holds a whole batch of vectors, a few hundred frames (as float32)."""
    assert VPG("MlpPolicy", "CartPole-v1").chunk_size == CHUNK_BYTES // (4 * 4)
    model = VPG("CnnPolicy", CountingEnv("image"), policy_kwargs=TINY_CNN_POLICY)
    assert model.chunk_size == CHUNK_BYTES // (4 * 36 * 36)
