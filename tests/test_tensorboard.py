"""TensorBoard: runs named VPG_1, VPG_2, … with the documented scalars, read back from the event files."""

import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sb3_vpg import VPG

SCALARS = {
    "train/policy_gradient_loss",
    "train/n_episodes",
    "train/return_mean",
    "train/return_std",
    "train/grad_norm",
    "train/entropy",
    "train/learning_rate",
    "train/n_updates",
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "time/fps",
}


def read_scalars(run_dir: Path) -> dict[str, list[float]]:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_runs_and_scalars_in_event_files(tmp_path: Path) -> None:
    model = VPG(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=2e-3,
        n_episodes=2,
        policy_kwargs=dict(net_arch=[8]),
        tensorboard_log=str(tmp_path),
        seed=0,
    )
    model.learn(total_timesteps=600)
    model.learn(total_timesteps=300, reset_num_timesteps=False)
    model.learn(total_timesteps=300)

    # SB3's numbering: a continued run writes into the same folder, a fresh one opens the next.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VPG_1", "VPG_2"]
    scalars = read_scalars(tmp_path / "VPG_1")
    assert scalars.keys() >= SCALARS
    assert all(m >= 2 for m in scalars["train/n_episodes"])
    assert scalars["train/learning_rate"][0] == pytest.approx(2e-3)
    # n_updates counts on across the continued learn(): strictly increasing.
    updates = scalars["train/n_updates"]
    assert updates == sorted(set(updates)) and updates[0] == 1
    assert all(std >= 0 for std in scalars["train/return_std"])


class SleepingEnv(gym.Env):
    """One-step episodes, each step sleeping ``DELAY`` seconds first and counted: no run takes more than 1 / DELAY
    steps a second."""

    DELAY = 1e-3
    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        time.sleep(self.DELAY)
        self.steps += 1
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


def test_fps_counts_the_steps_taken(tmp_path: Path) -> None:
    """``time/fps`` is the steps the envs took over the wall-clock they took: never above what the sleep allows. (The
    bound below, SB3's test_fps_logger's, depends on the machine's speed; CI skips it there.)"""
    env = make_vec_env(SleepingEnv, n_envs=2)
    model = VPG("MlpPolicy", env, n_episodes=4, tensorboard_log=str(tmp_path), seed=0)
    model.learn(total_timesteps=100, log_interval=1)

    assert model.num_timesteps == sum(env.get_attr("steps")) == 100
    fps = read_scalars(tmp_path / "VPG_1")["time/fps"]
    assert len(fps) == 25 and max(fps) <= 1 / SleepingEnv.DELAY
