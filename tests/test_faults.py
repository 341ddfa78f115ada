"""Faults during learn: env exceptions, non-finite env data, KeyboardInterrupt; the model stays usable after each."""

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

import sb3_vpg
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
from tests.scripted_episodes import ScriptedEpisodes


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
        mine = batch.observations[:, 0].cpu().numpy() == index
        np.testing.assert_array_equal(batch.observations[mine, 1].cpu().numpy(), np.repeat([1, 3], 5))
        np.testing.assert_array_equal(batch.observations[mine, 2].cpu().numpy(), np.tile(np.arange(5), 2))


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


class NanFirstObservation(CountingEnv):
    """A CountingEnv whose reset returns a NaN observation."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return np.full_like(obs, np.nan), info


def test_non_finite_first_observation_fails_like_every_later_one() -> None:
    model = VPG("MlpPolicy", NanFirstObservation(), n_steps=8, policy_kwargs=TINY_POLICY)
    with pytest.raises(ValueError, match=r"non-finite observation \(in env \[0\]\) at timestep 0"):
        model.learn(16)


@pytest.mark.parametrize(
    ("reward", "normalize_advantage"), [(3e38, False), (3e38, True), (1e30, False)], ids=["overflow", "normalised", "huge"]
)
def test_rewards_too_large_stop_the_update_naming_their_scale(reward: float, normalize_advantage: bool) -> None:
    """
    Rewards whose returns overflow float32, or whose gradient does, stop the update with VPG's ValueError (their
    scale and what helps) before any weight moves, instead of torch's error on the next forward pass.
    """
    model, _ = faulty_model(1, fault_at=1, reward=reward)
    model.normalize_advantage = normalize_advantage
    weights = parameters_of(model)
    with pytest.raises(ValueError, match=r"Scale the rewards down \(VecNormalize\(norm_reward=True\)"):
        model.learn(16)
    assert model._n_updates == 0 and same_parameters(weights, parameters_of(model))


def test_one_step_batch_with_normalisation_is_left_unnormalised() -> None:
    """As in PPO, a batch of one step is not normalised (its std is undefined): finite weights, the policy moves."""
    model = VPG("MlpPolicy", CountingEnv(ep_length=1), n_steps=1, normalize_advantage=True, policy_kwargs=TINY_POLICY)
    weights = parameters_of(model)
    model.learn(3)
    assert model._n_updates == 3 and model.logger.name_to_value["train/advantage_mean"] == 1.0
    assert all(th.isfinite(value).all() for value in parameters_of(model).values() if value.is_floating_point())
    assert not same_parameters(weights, parameters_of(model))


class ListRewards(VecEnvWrapper):
    """A VecEnv whose ``step`` returns its rewards as a Python list, as some third-party VecEnvs do."""

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, rewards.tolist(), dones, infos


def test_rewards_as_a_list_are_accepted_as_ppo_accepts_them() -> None:
    env = ListRewards(DummyVecEnv([lambda: CountingEnv(ep_length=5)]))
    model = VPG("MlpPolicy", env, n_steps=10, policy_kwargs=TINY_POLICY)
    batches = record_batches(model)
    model.learn(10)
    # PPO on the CPU: on a CUDA device it adds its bootstrapped value at a truncation, a CUDA tensor, into the list of
    # rewards, which its buffer then fails to convert to numpy.
    PPO("MlpPolicy", env, n_steps=10, batch_size=10, policy_kwargs=TINY_POLICY, device="cpu").learn(10)
    np.testing.assert_array_equal(batches[0].rewards, [1, 2, 3, 4, 5] * 2)


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
        mine = batch.observations[:, 0].cpu().numpy() == index
        np.testing.assert_array_equal(batch.observations[mine, 1].cpu().numpy(), np.repeat([1, 2], 5))
        np.testing.assert_array_equal(batch.observations[mine, 2].cpu().numpy(), np.tile(np.arange(5), 2))


def test_keyboard_interrupt_inside_env_step(tmp_path) -> None:
    """A KeyboardInterrupt raised while the env steps propagates; the model saves and the next learn resets the envs."""
    model, _ = faulty_model(1, fault_at=3, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        model.learn(16)
    assert model._last_obs is None
    model.save(tmp_path / "vpg")
    model.learn(16)
    assert model.num_timesteps == 16 and model._n_updates == 2


#: Two envs whose episodes last 2 to 5 steps, so that rollouts of 4 steps end inside episodes.
SCRIPTS = [[[1.0] * 3, [1.0] * 5], [[1.0] * 2, [2.0] * 4]]
PACKAGE = str(Path(sb3_vpg.__file__).parent)


class InterruptAtLine:
    """
    A ``sys.settrace`` hook that counts the lines of sb3_vpg's own code as they run and raises KeyboardInterrupt,
    as a Ctrl-C would, before the ``at``-th; with ``at=None`` it only counts.

    :param at: The line (1-based, in the order they run) at which to interrupt
    """

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.count = 0

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self.line if frame.f_code.co_filename.startswith(PACKAGE) else None

    def line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.count += 1
            if self.count == self.at:
                raise KeyboardInterrupt(f"line {frame.f_code.co_filename}:{frame.f_lineno}")
        return self.line


def scripted_model() -> tuple[VPG, list]:
    """VPG with every part of an update (GAE against a learned V, value steps) after one update of 2 × 4 steps."""
    env = DummyVecEnv([lambda tag=tag: ScriptedEpisodes(SCRIPTS[tag], tag=tag) for tag in range(len(SCRIPTS))])
    options = dict(reward_to_go=True, baseline="value", gae_lambda=0.9, normalize_advantage=True, n_value_steps=1)
    model = VPG("MlpPolicy", env, n_steps=4, policy_kwargs=dict(net_arch=[4]), seed=0, **options)
    batches = record_batches(model)
    model.learn(8)
    return model, batches


def traced_learn(model: VPG, tracer: InterruptAtLine) -> None:
    """The model's next rollout and update, 2 × 4 steps, traced."""
    sys.settrace(tracer)
    try:
        model.learn(8, reset_num_timesteps=False)
    finally:
        sys.settrace(None)


def assert_whole_episodes_once(batches: list) -> None:
    """Every batch holds whole episodes (steps 0..L−1 of one env's episode, L its scripted length), none twice."""
    seen: set[tuple[int, int]] = set()
    for batch in batches:
        steps: dict[tuple[int, int], list[int]] = {}
        for tag, episode, t in batch.observations.cpu().numpy().astype(int):
            steps.setdefault((tag, episode), []).append(t)
        assert batch.n_episodes == len(steps)
        for (tag, episode), ts in steps.items():
            script = SCRIPTS[tag]
            assert ts == list(range(len(script[episode % len(script)]))), (tag, episode, ts)
            assert (tag, episode) not in seen, (tag, episode)
            seen.add((tag, episode))


@pytest.mark.exhaustive
def test_interrupt_at_every_line_of_a_rollout_and_update_leaves_the_state_before_or_after() -> None:
    """
    A KeyboardInterrupt at each line that sb3_vpg runs in one rollout and update (collection, ``env.step`` to the end
    of ``add``, the update to the end of ``train()``), one line per run. After each: the policy is the one before the
    update or the one after it (never a half-written step) and the update count says which; learning on, every batch
    holds whole episodes, none twice, and the model updates again.
    """
    reference, _ = scripted_model()
    before = parameters_of(reference)
    counter = InterruptAtLine(None)
    traced_learn(reference, counter)
    after = parameters_of(reference)
    assert reference._n_updates == 2 and not same_parameters(before, after)

    try:
        for at in range(1, counter.count + 1):
            model, batches = scripted_model()
            with pytest.raises(KeyboardInterrupt):
                traced_learn(model, InterruptAtLine(at))
            updated = model._n_updates == 2
            assert same_parameters(parameters_of(model), after if updated else before), at
            assert updated or model._n_updates == 1, at

            model.learn(16, reset_num_timesteps=False)
            assert model._n_updates >= 3, at
            assert_whole_episodes_once(batches)
    finally:
        th.set_grad_enabled(True)


def counting_venv_model(n_envs: int = 2) -> VPG:
    env = DummyVecEnv([lambda i=i: CountingEnv(ep_length=5, index=i) for i in range(n_envs)])
    return VPG("MlpPolicy", env, n_steps=4, policy_kwargs=TINY_POLICY, seed=0)


def assert_whole_counting_episodes(batches: list) -> None:
    """Every batch of CountingEnv steps holds whole 5-step episodes (steps 0..4 of one env's episode), none twice."""
    seen: set[tuple[int, int]] = set()
    for batch in batches:
        episodes = batch.observations.cpu().numpy().astype(int).reshape(-1, 5, 3)
        assert len(episodes) == batch.n_episodes
        for episode in episodes:
            assert (episode[:, :2] == episode[0, :2]).all() and (episode[:, 2] == np.arange(5)).all(), episode
            assert tuple(episode[0, :2]) not in seen
            seen.add(tuple(episode[0, :2]))


@pytest.mark.parametrize(
    "resume, n_dropped",
    [
        # load without a reset: each env is 3 steps into an episode whose start the new buffer never got: dropped.
        (lambda model, path: VPG.load(path, env=model.get_env(), force_reset=False), 2),
        # load with the reset SB3 does by default: new episodes from their first step, nothing to drop.
        (lambda model, path: VPG.load(path, env=model.get_env()), 0),
        # set_env with a reset: the buffer held 3 steps of each env's running episode; the reset cuts them: dropped.
        (lambda model, path: model.set_env(model.get_env()) or model, 2),
        # set_env without a reset, the same envs: the running episodes go on, whole.
        (lambda model, path: model.set_env(model.get_env(), force_reset=False) or model, 0),
    ],
    ids=["load-without-reset", "load", "set_env", "set_env-without-reset"],
)
def test_resumed_model_never_trains_an_episode_whose_start_it_lost(tmp_path, resume: Callable, n_dropped: int) -> None:
    """
    Saved or re-attached after 8 steps of 5-step episodes (each env 3 steps into its 2nd episode), then learning on:
    every batch holds whole episodes, and a running episode whose start the buffer lost is dropped, whole, and counted.
    """
    model = counting_venv_model()
    model.learn(16)
    model.save(tmp_path / "vpg")
    resumed = resume(model, tmp_path / "vpg")
    batches = record_batches(resumed)
    resumed.learn(40, reset_num_timesteps=False)
    assert resumed._n_updates >= 4
    assert_whole_counting_episodes(batches)
    assert resumed.rollout_buffer.n_dropped_episodes == resumed.logger.name_to_value["train/n_dropped_episodes"]
    assert resumed.rollout_buffer.n_dropped_episodes == n_dropped


def test_learn_with_reset_drops_the_running_episodes_and_keeps_the_complete_ones() -> None:
    """``learn()`` resets the envs (reset_num_timesteps=True): running episodes are dropped and counted."""
    model = counting_venv_model()
    model.learn(16)  # 3 steps of each env's 2nd episode running
    batches = record_batches(model)
    model.learn(40)
    assert model.rollout_buffer.n_dropped_episodes == 2
    assert_whole_counting_episodes(batches)


NUMPY = str(Path(np.__file__).parent)


class InterruptAfterCommit:
    """
    A ``sys.settrace`` hook that, once the model's update has committed (its update count has gone up) and until
    ``train()`` returns, counts the lines that run in any code but numpy's (the package's, the standard library's,
    SB3's, torch's: numpy's lines run inside calls whose own lines are counted, and change no state of the model) and
    raises KeyboardInterrupt before the ``at``-th; with ``at=None`` it only counts.

    :param model: The model whose update is watched
    :param at: The line (1-based, in the order they run after the commit) at which to interrupt
    """

    def __init__(self, model: VPG, at: int | None) -> None:
        self.model = model
        self.n_updates = model._n_updates
        self.at = at
        self.count = 0
        self.train_returned = False

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        return None if self.train_returned else self.line

    def line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return" and frame.f_code is VPG.train.__wrapped__.__code__:  # type: ignore[attr-defined]
            self.train_returned = True
        committed = self.model._n_updates > self.n_updates
        if event == "line" and committed and not self.train_returned and NUMPY not in frame.f_code.co_filename:
            self.count += 1
            if self.count == self.at:
                raise KeyboardInterrupt(f"line {frame.f_code.co_filename}:{frame.f_lineno}")
        return None if self.train_returned else self.line


@pytest.mark.exhaustive
def test_an_interrupt_after_the_commit_never_undoes_the_update() -> None:
    """
    A KeyboardInterrupt at each line that runs between an update's commit and the return of ``train()``, in any code.
    The update stands: the policy is the one after it and the count says so. The exception is then kept (as a
    notebook or an app does), the model updates 3 more times, and the exception is freed: nothing it held can put the
    policy or the count back, and no batch is trained twice.
    """
    reference, _ = scripted_model()
    counter = InterruptAfterCommit(reference, None)
    sys.settrace(counter)
    try:
        reference.learn(8, reset_num_timesteps=False)
    finally:
        sys.settrace(None)
    after = parameters_of(reference)
    assert reference._n_updates == 2 and counter.count > 0

    for at in range(1, counter.count + 1):
        model, batches = scripted_model()
        sys.settrace(InterruptAfterCommit(model, at))
        try:
            with pytest.raises(KeyboardInterrupt) as raised:
                model.learn(8, reset_num_timesteps=False)
        finally:
            sys.settrace(None)
        th.set_grad_enabled(True)
        assert model._n_updates == 2 and same_parameters(parameters_of(model), after), at
        model.learn(24, reset_num_timesteps=False)
        later, n_updates = parameters_of(model), model._n_updates
        assert n_updates >= 5, at
        del raised
        gc.collect()
        assert model._n_updates == n_updates and same_parameters(parameters_of(model), later), at
        assert_whole_episodes_once(batches)


class HugeFloat64Observation(gym.Env):
    """A float64 observation that is finite in float64 and infinite once cast to float32, from the 3rd step on."""

    observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.array([0.0, 1e39 if self.t >= 3 else 1.0]), 1.0, False, self.t >= 5, {}


def test_an_observation_beyond_float32_is_named_as_the_cause() -> None:
    """1e39 is finite in float64 but not in the policy's float32: collection stops naming the observation."""
    model = VPG("MlpPolicy", HugeFloat64Observation(), n_steps=8, policy_kwargs=TINY_POLICY, seed=0)
    weights = parameters_of(model)
    with pytest.raises(ValueError, match=r"observation beyond float32's range \(\|x\| = 1e\+39 > 3.4e\+38, in env \[0\]\)"):
        model.learn(16)
    assert model._n_updates == 0 and same_parameters(weights, parameters_of(model))
