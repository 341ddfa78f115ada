"""Bad input gets a clear error at construction, naming the parameter, the value and what is allowed."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.envs import IdentityEnv

from sb3_vpg import VPG
from sb3_vpg.buffers import EpisodeRolloutBuffer
from sb3_vpg.vpg import DEFAULT_N_EPISODES


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_steps=0), ValueError, "n_steps must be a positive integer, got 0"),
        (dict(n_steps=-5), ValueError, "n_steps must be a positive integer, got -5"),
        (dict(n_steps=2.5), ValueError, "n_steps must be a positive integer, got 2.5"),
        (dict(n_episodes=0), ValueError, "n_episodes must be a positive integer, got 0"),
        (dict(n_episodes=True), ValueError, "n_episodes must be a positive integer, got True"),
        (dict(n_steps=64, n_episodes=4), ValueError, "not both: got n_steps=64 and n_episodes=4"),
        (dict(gamma=1.5), ValueError, "gamma must be in [0, 1], got 1.5"),
        (dict(gamma=-0.1), ValueError, "gamma must be in [0, 1], got -0.1"),
        (dict(learning_rate=-1e-3), ValueError, "learning_rate must be a non-negative number or a schedule, got -0.001"),
        (dict(gae_lambda=1.2), ValueError, "gae_lambda must be in [0, 1], got 1.2"),
        (dict(max_grad_norm=0.0), ValueError, "max_grad_norm must be positive or None (no clipping), got 0.0"),
        (dict(max_episode_steps=0), ValueError, "max_episode_steps must be a positive integer, got 0"),
        (dict(baseline="critic"), ValueError, "baseline must be one of (None, 'mean', 'value'), got 'critic'"),
        (dict(vf_coef=-1.0), ValueError, "vf_coef must be non-negative, got -1.0"),
        (dict(n_value_steps=-1, baseline="value"), ValueError, "n_value_steps must be a non-negative integer, got -1"),
        (dict(n_value_steps=5), ValueError, "n_value_steps=5 fits the value head, which only baseline='value' uses"),
        (dict(rollout_buffer_class=RolloutBuffer), TypeError, "rollout_buffer_class must be a subclass"),
        (dict(clip_range=0.2), TypeError, "VPG does not take the keyword 'clip_range'"),
        (dict(collective_timeout=0), ValueError, "collective_timeout must be a positive number of seconds, got 0"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        VPG("MlpPolicy", "CartPole-v1", **kwargs)
    assert message in str(raised.value)


def test_unknown_policy_name() -> None:
    with pytest.raises(ValueError, match="policy: unknown policy name 'LstmPolicy'; VPG knows MlpPolicy, CnnPolicy"):
        VPG("LstmPolicy", "CartPole-v1")


def test_unsupported_spaces() -> None:
    class TupleActions(IdentityEnv):
        def __init__(self):
            super().__init__(dim=2)
            self.action_space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(2)])

    with pytest.raises(ValueError, match="env: VPG supports the action spaces Box, Discrete, MultiDiscrete, MultiBinary"):
        VPG("MlpPolicy", TupleActions())


def test_default_batch_and_choices() -> None:
    assert VPG("MlpPolicy", "CartPole-v1").n_episodes == DEFAULT_N_EPISODES
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=32)
    assert (model.n_steps, model.n_episodes) == (32, None)
    assert isinstance(model.rollout_buffer, EpisodeRolloutBuffer)
    # The defaults are Algorithm 1 as the docs state it (Key equations): undiscounted, no clipping, no baseline, Adam.
    assert (model.gamma, model.max_grad_norm, model.baseline, model.reward_to_go) == (1.0, None, None, False)
    assert type(model.policy.optimizer).__name__ == "Adam"


def test_never_ending_episode_is_stopped_with_a_clear_error() -> None:
    """Every step is kept until its episode ends: past max_episode_steps collection stops instead of growing."""
    model = VPG("MlpPolicy", IdentityEnv(dim=2, ep_length=10**9), n_steps=16, max_episode_steps=100, seed=0)
    with pytest.raises(RuntimeError, match="has lasted more than max_episode_steps=100 steps without ending"):
        model.learn(total_timesteps=1_000)
    assert model.num_timesteps <= 112
    assert model.rollout_buffer.n_running_steps == 100  # the episode's steps so far, the 101st refused
    assert np.isfinite(model.policy.action_net.weight.detach().cpu().numpy()).all()


def test_fewer_episodes_than_processes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun's 4 processes (its WORLD_SIZE), n_episodes=2 leaves ranks without an episode: refused, before
    any process group is joined."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ValueError, match=r"n_episodes=2 is the whole batch, shared by the 4 processes .* n_episodes >= 4"):
        VPG("MlpPolicy", "CartPole-v1", n_episodes=2)
