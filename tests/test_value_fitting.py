"""n_value_steps: more optimiser steps on the value loss alone, after the policy's step, which they leave as it was."""

import numpy as np
import torch as th
import torch.nn.functional as F

from sb3_vpg import VPG
from sb3_vpg.estimators import reward_to_go
from tests.helpers_sb3 import StopAfterUpdates, record_batches


def value_model(n_value_steps: int) -> VPG:
    return VPG(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=1e-2,
        n_episodes=4,
        reward_to_go=True,
        baseline="value",
        n_value_steps=n_value_steps,
        policy_kwargs=dict(net_arch=[16], optimizer_class=th.optim.SGD),
        seed=0,
    )


def test_value_steps_fit_the_value_and_leave_the_policy_step_alone() -> None:
    # Built and trained one after the other: the seed then gives both the same batch and the same joint step.
    plain = value_model(0).learn(total_timesteps=10_000, callback=StopAfterUpdates(1))
    fitted = value_model(10)
    batches = record_batches(fitted)
    fitted.learn(total_timesteps=10_000, callback=StopAfterUpdates(1))
    for name in ("action_net.weight", "action_net.bias", "mlp_extractor.policy_net.0.weight"):
        assert th.equal(plain.policy.state_dict()[name], fitted.policy.state_dict()[name]), name
    assert not th.equal(plain.policy.value_net.weight, fitted.policy.value_net.weight)

    # The extra steps lower the value loss on the batch they were fitted on.
    (batch,) = batches
    dones = np.append(batch.episode_starts[1:], 1.0)
    target = th.as_tensor(reward_to_go(batch.rewards, dones, gamma=1.0), dtype=th.float32, device=plain.device)
    with th.no_grad():
        losses = [F.mse_loss(m.policy.predict_values(batch.observations).flatten(), target).item() for m in (plain, fitted)]
    assert losses[1] < 0.9 * losses[0], losses
