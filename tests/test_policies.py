"""policy_kwargs as in SB3, custom policies, train/eval modes, and gSDE, checked against what A2C does with the same input."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from torch import nn

from sb3_vpg import VPG
from tests.helpers_sb3 import TINY_POLICY, changed_weights, parameters_of


def linear_sizes(module: nn.Module) -> list[int]:
    """The output sizes of the Linear layers of a module, in order."""
    return [layer.out_features for layer in module.modules() if isinstance(layer, nn.Linear)]


@pytest.mark.parametrize(
    ("net_arch", "pi_sizes", "vf_sizes"),
    [([16], [16], [16]), ([16, 8], [16, 8], [16, 8]), ({"pi": [8], "vf": [16, 4]}, [8], [16, 4])],
)
def test_net_arch(net_arch, pi_sizes: list[int], vf_sizes: list[int]) -> None:
    """``net_arch`` builds the same actor and critic networks as for A2C, shared list or ``dict(pi=..., vf=...)``."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs={"net_arch": net_arch})
    a2c = A2C("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs={"net_arch": net_arch})
    assert linear_sizes(model.policy.mlp_extractor.policy_net) == pi_sizes
    assert linear_sizes(model.policy.mlp_extractor.value_net) == vf_sizes
    assert str(model.policy) == str(a2c.policy)
    model.learn(16)


def test_activation_fn_and_ortho_init() -> None:
    """``activation_fn`` picks the layers' activation; ``ortho_init`` switches SB3's orthogonal initialisation."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs={"net_arch": [16], "activation_fn": nn.ReLU}, seed=0)
    assert any(isinstance(layer, nn.ReLU) for layer in model.policy.mlp_extractor.modules())
    assert not any(isinstance(layer, nn.Tanh) for layer in model.policy.mlp_extractor.modules())
    # Orthogonal init gives the action head gain 0.01: its weights are tiny. PyTorch's default init is not.
    weight = model.policy.action_net.weight
    np.testing.assert_allclose((weight @ weight.T).detach().cpu().numpy(), 1e-4 * np.eye(2), atol=1e-7)
    plain = VPG("MlpPolicy", "CartPole-v1", n_steps=8, policy_kwargs={"net_arch": [16], "ortho_init": False}, seed=0)
    assert plain.policy.action_net.weight.abs().max() > 0.05


def test_log_std_init() -> None:
    """``log_std_init`` sets the initial log standard deviation of Box actions, which training then moves."""
    # Pendulum's rewards are never 0, so R(τ) ≠ 0 and the one update (a whole 200-step episode) moves every parameter.
    policy_kwargs = {**TINY_POLICY, "log_std_init": -1.5}
    model = VPG("MlpPolicy", "Pendulum-v1", n_episodes=1, policy_kwargs=policy_kwargs, seed=0)
    np.testing.assert_array_equal(model.policy.log_std.detach().cpu().numpy(), [-1.5])
    model.learn(200)
    assert model._n_updates == 1
    assert model.policy.log_std.item() != -1.5


class TanhExtractor(BaseFeaturesExtractor):
    """A custom features extractor with a keyword argument."""

    def __init__(self, observation_space: gym.Space, features_dim: int = 4):
        super().__init__(observation_space, features_dim)
        self.linear = nn.Linear(get_flattened_obs_dim(observation_space), features_dim)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return th.tanh(self.linear(observations))


@pytest.mark.parametrize("share_features_extractor", [True, False])
def test_features_extractor_class_and_sharing(share_features_extractor: bool) -> None:
    """``features_extractor_class``/``_kwargs`` are used, shared by actor and critic or not, and trained."""
    policy_kwargs = {
        **TINY_POLICY,
        "features_extractor_class": TanhExtractor,
        "features_extractor_kwargs": {"features_dim": 3},
        "share_features_extractor": share_features_extractor,
    }
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=16, baseline="value", policy_kwargs=policy_kwargs, seed=0)
    policy = model.policy
    assert isinstance(policy.pi_features_extractor, TanhExtractor)
    assert policy.pi_features_extractor.linear.out_features == 3
    assert (policy.pi_features_extractor is policy.vf_features_extractor) is share_features_extractor
    before = parameters_of(model)
    model.learn(32)
    changed = changed_weights(before, parameters_of(model))
    assert "pi_features_extractor.linear.weight" in changed
    # With baseline="value" the critic's own extractor is trained too.
    assert "vf_features_extractor.linear.weight" in changed


def test_optimizer_class_and_kwargs() -> None:
    """``optimizer_class``/``optimizer_kwargs`` choose the optimiser; one SGD step moves the weights by exactly -lr·grad."""
    policy_kwargs = {**TINY_POLICY, "optimizer_class": th.optim.SGD, "optimizer_kwargs": {"momentum": 0.0, "nesterov": False}}
    env = IdentityEnv(dim=2, ep_length=4)
    model = VPG("MlpPolicy", env, n_steps=8, learning_rate=0.5, policy_kwargs=policy_kwargs, seed=0)
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, th.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.0 and optimizer.param_groups[0]["lr"] == 0.5
    before = model.policy.action_net.weight.detach().clone()
    model.learn(8)
    grad = model.policy.action_net.weight.grad
    assert grad.abs().sum() > 0
    th.testing.assert_close(model.policy.action_net.weight.detach(), before - 0.5 * grad)


class CustomPolicy(ActorCriticPolicy):
    """A custom ActorCriticPolicy subclass, as the SB3 docs write them: its own MLP extractor."""

    class Extractor(nn.Module):
        def __init__(self, features_dim: int):
            super().__init__()
            self.latent_dim_pi = 5
            self.latent_dim_vf = 3
            self.policy_net = nn.Sequential(nn.Linear(features_dim, 5), nn.ELU())
            self.value_net = nn.Sequential(nn.Linear(features_dim, 3), nn.ELU())

        def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
            return self.forward_actor(features), self.forward_critic(features)

        def forward_actor(self, features: th.Tensor) -> th.Tensor:
            return self.policy_net(features)

        def forward_critic(self, features: th.Tensor) -> th.Tensor:
            return self.value_net(features)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = self.Extractor(self.features_dim)


def test_custom_actor_critic_policy_subclass() -> None:
    """A custom ``ActorCriticPolicy`` subclass is used as given and trained."""
    model = VPG(CustomPolicy, "CartPole-v1", n_steps=16, seed=0)
    assert isinstance(model.policy, CustomPolicy)
    assert model.policy.action_net.in_features == 5
    before = parameters_of(model)
    model.learn(32)
    assert "mlp_extractor.policy_net.0.weight" in changed_weights(before, parameters_of(model))


def test_unknown_policy_fails_clearly() -> None:
    """A policy that is neither a known name nor an ActorCriticPolicy subclass is refused with a clear message."""
    with pytest.raises(ValueError, match="unknown policy name 'MlpLstmPolicy'"):
        VPG("MlpLstmPolicy", "CartPole-v1")
    with pytest.raises(TypeError, match="subclass of ActorCriticPolicy"):
        VPG(FlattenExtractor, "CartPole-v1")


class ModeRecordingExtractor(BaseFeaturesExtractor):
    """Flatten, batch norm and dropout, as in SB3's test_train_eval_mode; records the mode of every call."""

    def __init__(self, observation_space: gym.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.flatten = nn.Flatten()
        self.batch_norm = nn.BatchNorm1d(self._features_dim)
        self.dropout = nn.Dropout(0.5)
        self.modes: list[bool] = []

    def forward(self, observations: th.Tensor) -> th.Tensor:
        self.modes.append(self.training)
        return self.dropout(self.batch_norm(self.flatten(observations)))


BATCH_NORM_POLICY = {"net_arch": [16], "features_extractor_class": ModeRecordingExtractor}


def test_batch_norm_and_dropout_modes() -> None:
    """Collecting runs batch norm/dropout in eval mode (running stats unchanged); the update runs them in train mode."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=16, policy_kwargs=BATCH_NORM_POLICY, seed=1)
    extractor = model.policy.features_extractor
    running_mean = extractor.batch_norm.running_mean.clone()
    _, callback = model._setup_learn(total_timesteps=32)
    for _ in range(2):
        model.collect_rollouts(model.get_env(), callback, model.rollout_buffer, n_rollout_steps=16)
    assert extractor.modes == [False] * 32
    assert th.equal(extractor.batch_norm.running_mean, running_mean)

    extractor.modes.clear()
    bias = extractor.batch_norm.bias.clone()
    model.learn(64)
    assert True in extractor.modes and False in extractor.modes
    assert not th.equal(extractor.batch_norm.running_mean, running_mean)
    assert not th.equal(extractor.batch_norm.bias, bias)


def test_predict_with_dropout_is_deterministic() -> None:
    """predict runs in eval mode: with dropout, deterministic predictions repeat and batch norm stats do not move."""
    model = VPG("MlpPolicy", "CartPole-v1", n_steps=16, policy_kwargs=BATCH_NORM_POLICY, seed=1)
    model.learn(32)
    running_mean = model.policy.features_extractor.batch_norm.running_mean.clone()
    obs = model.get_env().reset()
    first, _ = model.predict(obs, deterministic=True)
    for _ in range(5):
        np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], first)
    assert th.equal(model.policy.features_extractor.batch_norm.running_mean, running_mean)


class NoiseCountingPolicy(ActorCriticPolicy):
    """Counts the gSDE noise resamplings, to compare VPG's with A2C's."""

    n_noise_resets = 0

    def reset_noise(self, n_envs: int = 1) -> None:
        self.n_noise_resets += 1
        super().reset_noise(n_envs)


@pytest.mark.parametrize("sde_sample_freq", [-1, 4])
def test_gsde_resamples_noise_as_a2c_does(sde_sample_freq: int) -> None:
    """gSDE resamples its exploration matrix as often as A2C does for the same ``sde_sample_freq`` and ``n_steps``."""
    counts = []
    for algo in (VPG, A2C):
        model = algo(
            NoiseCountingPolicy,
            "Pendulum-v1",
            n_steps=16,
            use_sde=True,
            sde_sample_freq=sde_sample_freq,
            policy_kwargs=dict(TINY_POLICY),  # a copy: A2C writes its RMSprop settings into policy_kwargs
            seed=0,
        )
        model.policy.n_noise_resets = 0
        model.learn(64)
        counts.append(model.policy.n_noise_resets)
    assert counts[0] == counts[1]
    assert counts[0] == (4 if sde_sample_freq == -1 else 4 * 5)  # per rollout: once at its start (+ every 4 steps)


def test_gsde_explores_with_state_dependent_noise() -> None:
    """With gSDE, a fixed noise matrix gives the same action for the same observation; resampling changes it."""
    model = VPG("MlpPolicy", "Pendulum-v1", n_steps=16, use_sde=True, policy_kwargs=TINY_POLICY, seed=0)
    model.learn(32)
    assert model.policy.log_std.shape == (TINY_POLICY["net_arch"][-1], 1)  # gSDE's log std: one per latent feature
    obs = model.get_env().reset()
    model.policy.reset_noise()
    first, _ = model.predict(obs)
    np.testing.assert_array_equal(model.predict(obs)[0], first)
    model.policy.reset_noise()
    assert not np.array_equal(model.predict(obs)[0], first)
    assert not np.array_equal(model.predict(obs, deterministic=True)[0], first)


def test_gsde_needs_box_actions() -> None:
    """gSDE on Discrete actions fails as it does for A2C."""
    with pytest.raises(ValueError, match="gSDE"):
        VPG("MlpPolicy", "CartPole-v1", use_sde=True)
