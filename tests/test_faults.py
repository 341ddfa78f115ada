"""Faults during learn: env exceptions, non-finite env data, KeyboardInterrupt; the model stays usable after each."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_vpg import VPG
from tests.helpers_sb3 import (
    TINY_MULTI_INPUT_POLICY,
    TINY_POLICY,
    CountingEnv,
    FaultyEnv,
    parameters_of,
    record_batches,
    same_parameters,
)


class EnvCrashed(Exception):
    """The error the env raises."""


def faulty_model(n_envs: int = 1, kind: str = "vector", **fault) -> tuple[VPG, list[FaultyEnv]]:
    """VPG on ``n_envs`` 5-step CountingEnvs, the last of which is wrapped in a FaultyEnv."""
    wrapped = []

    def make(index: int):
        env = CountingEnv(kind, ep_length=5, index=index)
        if index == n_envs - 1:
            env = FaultyEnv(env, **fault)
            wrapped.append(env)
        return env

    venv = DummyVecEnv([lambda i=i: make(i) for i in range(n_envs)])
    policy_kwargs = TINY_MULTI_INPUT_POLICY if kind == "dict" else TINY_POLICY
    model = VPG("MultiInputPolicy" if kind == "dict" else "MlpPolicy", venv, n_steps=8, policy_kwargs=policy_kwargs, seed=0)
    return model, wrapped


@pytest.mark.parametrize("n_envs", [1, 2])
def test_env_exception_reaches_user_and_model_recovers(tmp_path, n_envs: int) -> None:
    """
    An exception raised by env.step mid-rollout reaches the caller as the very same object; the model can be saved and
    loaded, and the next learn resets the envs, so every episode it trains on is whole (steps 0..4). An episode that
    had ended before the exception but was not trained yet is trained then, not forgotten.
    """
    error = EnvCrashed("the simulator died")
    model, _ = faulty_model(n_envs, fault_at=11, error=error)
    model.learn(8 * n_envs)  # one update: episode 0 trained on, the first 3 steps of episode 1 carried over
    weights = parameters_of(model)
    with pytest.raises(EnvCrashed) as raised:
        model.learn(16 * n_envs, reset_num_timesteps=False)
    assert raised.value is error
    assert model.num_timesteps == 8 * n_envs + 2 * n_envs  # the 3rd step of the 2nd rollout failed
    assert model._n_updates == 1 and same_parameters(weights, parameters_of(model))

    model.save(tmp_path / "vpg")
    loaded = VPG.load(tmp_path / "vpg", env=model.get_env())
    assert same_parameters(weights, parameters_of(loaded))

    batches = record_batches(model)
    model.learn(8 * n_envs, reset_num_timesteps=False)
    assert model._n_updates == 2
    (batch,) = batches
    # Episode 1 of each env (ended on the 2nd step of the failed rollout) and episode 3 (after the reset), whole.
    assert batch.n_episodes == 2 * n_envs
    assert model.rollout_buffer.n_dropped_episodes == 0  # nothing was running in the buffer when the env failed
    for index in range(n_envs):
        mine = batch.observations[:, 0].numpy() == index
        np.testing.assert_array_equal(batch.observations[mine, 1].numpy(), np.repeat([1, 3], 5))
        np.testing.assert_array_equal(batch.observations[mine, 2].numpy(), np.tile(np.arange(5), 2))


@pytest.mark.parametrize(
    ("kind", "fault", "message"),
    [
        ("vector", {"reward": np.nan}, r"non-finite reward \(in env \[1\]\) at timestep 4"),
        ("vector", {"reward": -np.inf}, r"non-finite reward \(in env \[1\]\)"),
        ("vector", {"observation_key": "", "value": np.inf}, r"non-finite observation \(in env \[1\]\)"),
        ("dict", {"observation_key": "vec", "value": np.nan}, r"non-finite observation\['vec'\] \(in env \[1\]\)"),
    ],
    ids=["nan-reward", "inf-reward", "inf-observation", "nan-dict-observation"],
)
def test_non_finite_env_data_fails_clearly_before_the_weights(kind: str, fault: dict, message: str) -> None:
    """A non-finite reward or observation raises a ValueError naming it (and the env) before any weight is touched."""
    model, _ = faulty_model(2, kind=kind, fault_at=3, **fault)
    weights = parameters_of(model)
    with pytest.raises(ValueError, match=message):
        model.learn(32)
    assert same_parameters(weights, parameters_of(model))
    assert all(th.isfinite(value).all() for value in parameters_of(model).values() if value.is_floating_point())
    # The spoilt step was not stored: the 2 steps before it of each env wait in the buffer, nothing else.
    assert (model.rollout_buffer.size(), model.rollout_buffer.n_running_steps) == (0, 4)


def test_non_finite_reward_after_updates_leaves_finite_weights() -> None:
    """A NaN reward arriving after some updates stops learn with the weights of the last good update, all finite."""
    model, _ = faulty_model(1, fault_at=20, reward=np.nan)
    snapshots = []

    class Snapshot(BaseCallback):
        def _on_rollout_start(self) -> None:
            snapshots.append(parameters_of(self.model))

        def _on_step(self) -> bool:
            return True

    with pytest.raises(ValueError, match="non-finite reward"):
        model.learn(64, callback=Snapshot())
    assert model._n_updates == 2
    assert same_parameters(snapshots[-1], parameters_of(model))
    assert all(th.isfinite(value).all() for value in parameters_of(model).values() if value.is_floating_point())


class InterruptAt(BaseCallback):
    """Raises KeyboardInterrupt at the ``at``-th step, as a user's Ctrl-C would."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.n_calls == self.at:
            raise KeyboardInterrupt
        return True


def test_keyboard_interrupt_leaves_a_model_that_saves_and_loads(tmp_path) -> None:
    """A KeyboardInterrupt mid-learn leaves a model that saves, loads, predicts and learns on with whole episodes."""
    model, _ = faulty_model(2, fault_at=10**9)
    with pytest.raises(KeyboardInterrupt):
        model.learn(1000, callback=InterruptAt(at=11))
    assert model.num_timesteps == 22 and model._n_updates == 1
    model.save(tmp_path / "vpg")
    loaded = VPG.load(tmp_path / "vpg", env=model.get_env())
    assert same_parameters(parameters_of(model), parameters_of(loaded))
    obs = np.zeros((3, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])

    # Learning on: steps 0..10 of each env were stored before the interrupt, so the next update gets episodes 0..2
    # (steps 0..14) of each env, whole and once (episode 0 was trained on before the interrupt).
    batches = record_batches(model)
    model.learn(8, reset_num_timesteps=False)
    (batch,) = batches
    assert batch.n_episodes == 2 * 2
    for index in (0, 1):
        mine = batch.observations[:, 0].numpy() == index
        np.testing.assert_array_equal(batch.observations[mine, 1].numpy(), np.repeat([1, 2], 5))
        np.testing.assert_array_equal(batch.observations[mine, 2].numpy(), np.tile(np.arange(5), 2))


def test_keyboard_interrupt_inside_env_step(tmp_path) -> None:
    """A KeyboardInterrupt raised while the env steps propagates; the model saves and the next learn resets the envs."""
    model, _ = faulty_model(1, fault_at=3, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        model.learn(16)
    assert model._last_obs is None
    model.save(tmp_path / "vpg")
    model.learn(16)
    assert model.num_timesteps == 16 and model._n_updates == 2
