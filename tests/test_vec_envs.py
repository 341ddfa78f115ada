"""VPG with SB3's vectorised envs and wrappers: DummyVecEnv, SubprocVecEnv, VecNormalize, VecFrameStack, VecMonitor."""

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack, VecMonitor, VecNormalize

from sb3_vpg import VPG
from tests.helpers_sb3 import TINY_POLICY, CountingEnv, record_batches


class EpisodeCounter(BaseCallback):
    """Counts the episodes that end while collecting, and those handed to the updates."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = 0
        self.trained = 0

    def _on_step(self) -> bool:
        self.ended += int(np.sum(self.locals["dones"]))
        return True

    def _on_rollout_end(self) -> None:
        self.trained += self.model.rollout_buffer.n_episodes


def test_env_id_string() -> None:
    """An env id given as a string is made and wrapped in a one-env DummyVecEnv, as for A2C and PPO."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs=TINY_POLICY)
    assert isinstance(model.get_env(), DummyVecEnv) and model.n_envs == 1
    assert model.get_env().envs[0].spec.id == "CartPole-v1"
    model.learn(16)
    assert model.num_timesteps == 16


@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
def test_every_ended_episode_is_trained_on_once(vec_env_cls: type) -> None:
    """With several envs (in this process or in subprocesses), each episode that ends is handed to one update, once."""
    kwargs = {"start_method": "fork"} if vec_env_cls is SubprocVecEnv else None
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=vec_env_cls, vec_env_kwargs=kwargs)
    try:
        model = VPG("MlpPolicy", env, n_steps=32, policy_kwargs=TINY_POLICY, seed=0)
        counter = EpisodeCounter()
        model.learn(4 * 64, callback=counter)
        assert model.num_timesteps == 256
        assert counter.ended >= 5  # CartPole episodes under a random policy last ~20 steps
        assert counter.trained == counter.ended
        assert len(model.ep_info_buffer) == counter.ended  # Monitor from make_vec_env
    finally:
        env.close()


def test_n_steps_is_per_env() -> None:
    """``n_steps`` is per env, as in A2C/PPO: a rollout of 2 envs with n_steps=8 is 16 timesteps."""
    model = VPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=8, policy_kwargs=TINY_POLICY)
    model.learn(32)
    assert model.num_timesteps == 32
    assert model._n_updates + model._n_skipped_updates == 2


def test_vec_normalize_trains_and_reloads(tmp_path) -> None:
    """VecNormalize's normalised rewards reach VPG; the model and the saved statistics reload to the same behaviour."""
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0), gamma=1.0)
    model = VPG("MlpPolicy", env, n_steps=16, policy_kwargs=TINY_POLICY, seed=0)
    batches = record_batches(model)
    model.learn(64)
    assert model.get_vec_normalize_env() is env
    assert env.obs_rms.count > 64
    rewards = np.concatenate([batch.rewards for batch in batches])
    assert len(rewards) and not np.allclose(rewards, 1.0), "CartPole's reward is 1: VPG must see the normalised reward"

    model.save(tmp_path / "model")
    env.save(str(tmp_path / "vec_normalize.pkl"))
    eval_env = VecNormalize.load(str(tmp_path / "vec_normalize.pkl"), make_vec_env("CartPole-v1", n_envs=1, seed=1))
    eval_env.training = False
    eval_env.norm_reward = False
    loaded = VPG.load(tmp_path / "model", env=eval_env)
    np.testing.assert_array_equal(eval_env.obs_rms.mean, env.obs_rms.mean)
    raw = np.array([[0.01, -0.2, 0.03, 0.4]], dtype=np.float32)
    np.testing.assert_allclose(eval_env.normalize_obs(raw), env.normalize_obs(raw))
    obs = eval_env.normalize_obs(raw)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(16)  # and it trains on the reloaded wrapper


def test_vec_frame_stack() -> None:
    """VecFrameStack's stacked observations are what VPG stores and trains on."""
    env = VecFrameStack(DummyVecEnv([lambda: CountingEnv("vector", ep_length=5)]), n_stack=3)
    model = VPG("MlpPolicy", env, n_steps=5, policy_kwargs=TINY_POLICY, seed=0)
    assert model.observation_space.shape == (9,)
    batches = record_batches(model)
    model.learn(5)
    stored = batches[0].observations.cpu().numpy()
    # Step t shows the steps t-2, t-1, t (zeros before the episode's start) in its last column of each frame.
    np.testing.assert_array_equal(stored[:, [2, 5, 8]], [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]])
    assert model._n_updates == 1


def test_vec_monitor() -> None:
    """VecMonitor's episode records feed VPG's episode statistics."""
    env = VecMonitor(DummyVecEnv([lambda i=i: CountingEnv("vector", ep_length=4 + i, index=i) for i in range(2)]))
    model = VPG("MlpPolicy", env, n_steps=10, policy_kwargs=TINY_POLICY, seed=0)
    model.learn(20)
    lengths = sorted(info["l"] for info in model.ep_info_buffer)
    returns = sorted(info["r"] for info in model.ep_info_buffer)
    assert lengths == [4, 4, 5, 5]
    assert returns == [10.0, 10.0, 15.0, 15.0]  # 1 + 2 + ... + L
