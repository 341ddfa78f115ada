"""VPG learns: quick envs reach their optimum within seconds."""

import pytest
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_vpg import VPG

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("options", [dict(), dict(reward_to_go=True, baseline="value", gae_lambda=0.95)])
def test_identity_env_reaches_the_optimum(options: dict) -> None:
    """IdentityEnv(4): reward 1 when the action names the observed state, 10 steps per episode; optimum 10."""
    env = IdentityEnv(dim=4, ep_length=10)
    model = VPG("MlpPolicy", env, learning_rate=1e-2, n_episodes=8, policy_kwargs=dict(net_arch=[32]), seed=0, **options)
    model.learn(total_timesteps=6_000)
    mean_return, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10)
    assert mean_return == 10.0
