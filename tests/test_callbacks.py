"""SB3's callbacks with VPG, and a callback that stops training: mid-rollout, the collected episodes stay whole."""

import numpy as np
import pytest
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnNoModelImprovement,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_vpg import VPG
from tests.helpers_sb3 import TINY_POLICY, CountingEnv, parameters_of, record_batches, same_parameters


def tiny_vpg(env="CartPole-v1", **kwargs) -> VPG:
    return VPG("MlpPolicy", env, n_steps=16, policy_kwargs=TINY_POLICY, seed=0, **kwargs)


def test_eval_and_checkpoint_callbacks(tmp_path) -> None:
    """EvalCallback evaluates and saves the best model; CheckpointCallback saves loadable checkpoints, in a CallbackList."""
    model = tiny_vpg()
    eval_callback = EvalCallback(
        make_vec_env("CartPole-v1", seed=1),
        n_eval_episodes=2,
        eval_freq=32,
        best_model_save_path=str(tmp_path / "best"),
        log_path=str(tmp_path / "eval"),
    )
    checkpoint = CheckpointCallback(save_freq=48, save_path=str(tmp_path / "checkpoints"), name_prefix="vpg")
    saved_weights = []

    class WeightsAtLastCheckpoint(BaseCallback):
        """The weights when the last checkpoint is written (before the update of the last rollout)."""

        def _on_step(self) -> bool:
            if self.num_timesteps == 96:
                saved_weights.append(parameters_of(self.model))
            return True

    model.learn(96, callback=CallbackList([eval_callback, checkpoint, WeightsAtLastCheckpoint()]))

    evaluations = np.load(tmp_path / "eval" / "evaluations.npz")
    np.testing.assert_array_equal(evaluations["timesteps"], [32, 64, 96])
    assert evaluations["results"].shape == (3, 2)
    assert eval_callback.best_mean_reward == evaluations["results"].mean(axis=1).max()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["vpg_48_steps.zip", "vpg_96_steps.zip"]
    checkpointed = VPG.load(tmp_path / "checkpoints" / "vpg_96_steps.zip")
    assert same_parameters(parameters_of(checkpointed), saved_weights[0])
    assert VPG.load(tmp_path / "best" / "best_model.zip").num_timesteps in (32, 64, 96)


def test_stop_on_reward_threshold() -> None:
    """StopTrainingOnRewardThreshold (from EvalCallback) stops training at the first evaluation above the threshold."""
    stop = StopTrainingOnRewardThreshold(reward_threshold=1.0, verbose=0)
    eval_callback = EvalCallback(make_vec_env("CartPole-v1"), eval_freq=16, n_eval_episodes=1, callback_on_new_best=stop)
    model = tiny_vpg()
    model.learn(1000, callback=eval_callback)
    assert model.num_timesteps == 16  # every CartPole episode earns more than 1


def test_stop_on_max_episodes() -> None:
    """StopTrainingOnMaxEpisodes stops once that many episodes per env have ended (episodes of 5 steps, 2 envs)."""
    env = DummyVecEnv([lambda i=i: CountingEnv(ep_length=5, index=i) for i in range(2)])
    model = tiny_vpg(env)
    model.learn(1000, callback=StopTrainingOnMaxEpisodes(max_episodes=3))
    assert model.num_timesteps == 2 * 15  # 3 episodes in each env
    assert model._n_updates == 0  # stopped mid-rollout: not trained on half a batch


def test_stop_on_no_model_improvement(tmp_path) -> None:
    """StopTrainingOnNoModelImprovement stops after that many evaluations without a better mean reward."""
    # Every episode of CountingEnv returns 1 + 2 + ... + 5 = 15, whatever the policy: no evaluation can improve.
    stop = StopTrainingOnNoModelImprovement(max_no_improvement_evals=2, min_evals=1)
    eval_callback = EvalCallback(
        Monitor(CountingEnv()), eval_freq=16, n_eval_episodes=1, callback_after_eval=stop, log_path=str(tmp_path)
    )
    model = tiny_vpg(CountingEnv())
    model.learn(1000, callback=eval_callback)
    assert eval_callback.evaluations_results == [[15.0]] * 4  # #1 sets the best; #2, #3, #4 do not improve: stop
    assert model.num_timesteps == 4 * 16


def test_progress_bar() -> None:
    """``learn(progress_bar=True)`` and ProgressBarCallback run (they need tqdm and rich, SB3's ``extra``)."""
    pytest.importorskip("tqdm")
    pytest.importorskip("rich")
    from stable_baselines3.common.callbacks import ProgressBarCallback

    model = tiny_vpg()
    model.learn(32, progress_bar=True)
    callback = ProgressBarCallback()
    model.learn(32, callback=callback)
    assert callback.pbar.n == 32
    assert model.num_timesteps == 32


class StopAt(BaseCallback):
    """Stops training at the ``at``-th step, and records every step it sees."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.rollout_ends = 0

    def _on_step(self) -> bool:
        return self.n_calls < self.at

    def _on_rollout_end(self) -> None:
        self.rollout_ends += 1


def test_callback_stop_mid_rollout_keeps_episodes_whole() -> None:
    """
    A callback returning False mid-rollout stops learn at once: no update on the half-collected batch, the steps so
    far stored in order, and a later ``learn(reset_num_timesteps=False)`` trains on those episodes, whole, once.
    """
    env = DummyVecEnv([lambda i=i: CountingEnv(ep_length=5, index=i) for i in range(2)])
    model = VPG("MlpPolicy", env, n_steps=16, policy_kwargs=TINY_POLICY, seed=0)
    before = parameters_of(model)
    stop = StopAt(at=7)
    model.learn(64, callback=stop)
    assert model.num_timesteps == 14 and stop.n_calls == 7
    assert model._n_updates == 0 and stop.rollout_ends == 0
    assert same_parameters(before, parameters_of(model))
    # Stored in order: each env's episode 0 (steps 0..4) complete, and steps 0..1 of its episode 1 running.
    buffer = model.rollout_buffer
    assert (buffer.pos, buffer.n_episodes, buffer.n_running_steps) == (10, 2, 4)
    np.testing.assert_array_equal(buffer.observations[:10, 0], np.repeat([0, 1], 5))  # env 0's episode, then env 1's
    np.testing.assert_array_equal(buffer.observations[:10, 2], np.tile(np.arange(5), 2))  # step t of each
    np.testing.assert_array_equal(buffer.rewards[:10], np.tile(np.arange(5) + 1, 2))

    batches = record_batches(model)
    model.learn(32, reset_num_timesteps=False)  # one more rollout of 16 steps per env
    assert model.num_timesteps == 14 + 32 and model._n_updates == 1
    (batch,) = batches
    # Steps 0..22 of each env: episodes 0..3 ended (20 steps), the one before the stop included, each whole.
    episodes, steps = batch.observations[:, 1].cpu().numpy(), batch.observations[:, 2].cpu().numpy()
    assert batch.n_episodes == 8
    for index in (0, 1):
        mine = batch.observations[:, 0].cpu().numpy() == index
        np.testing.assert_array_equal(episodes[mine], np.repeat(np.arange(4), 5))
        np.testing.assert_array_equal(steps[mine], np.tile(np.arange(5), 4))


def test_callback_stop_at_rollout_end_then_resume() -> None:
    """A stop on the last step of a rollout skips its update too; resuming trains on those episodes next."""
    env = DummyVecEnv([lambda: CountingEnv(ep_length=4)])
    model = VPG("MlpPolicy", env, n_steps=8, policy_kwargs=TINY_POLICY, seed=0)
    model.learn(100, callback=StopAt(at=8))
    assert model.num_timesteps == 8 and model._n_updates == 0
    assert model.rollout_buffer.n_episodes == 2
    model.learn(8, reset_num_timesteps=False)
    assert model._n_updates == 1
    # The 2 + 2 episodes were trained on by that update: readable, as SB3 keeps its last rollout, never trained again.
    assert model.rollout_buffer.batch_trained and model.rollout_buffer.n_episodes == 4
    assert model.rollout_buffer.size() == 16 and model.rollout_buffer.n_running_steps == 0
