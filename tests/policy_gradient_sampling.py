"""
The machinery of the Policy Gradient Theorem tests: many independent VPG updates from the same θ on the enumerable MDP.

VPG runs with plain SGD at learning rate 1, so each update's change of the action network *is* its gradient estimate
ĝ = −∇Loss; every parameter of the policy (the value head included) is put back before every rollout, so all updates
start from the same θ and the same V. The mean of the changes estimates E[ĝ], their spread its standard error.
"""

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_vpg import VPG
from sb3_vpg.envs import make_enumerable_mdp

HORIZON = 3
EPISODES_PER_UPDATE = 2
#: Largest accepted |mean − E[ĝ]| / standard error over the 8 components (two-sided p ≈ 6e-5 each under the null).
Z_TOLERANCE = 4.0
#: A look-alike's expectation must lie this many standard errors away, so that a test can tell it apart.
Z_LOOKALIKE = 10.0
#: The value head's bias: any value estimate entering R(τ) (SB3 bootstraps truncations) would shift ĝ by it.
VALUE_BIAS = 10.0


class ResetParameters(BaseCallback):
    """
    Record each update's change of the measured parameters, then put every parameter back, so that every update
    starts from the same point. An update that changes nothing (all weights 0) is recorded too: dropping it would
    scale the mean up.

    :param measured: The parameters whose change is recorded (the action network's: θ)
    :param others: Parameters that are only put back (the value head's)
    """

    def __init__(self, measured: list[th.nn.Parameter], others: list[th.nn.Parameter]):
        super().__init__()
        self.measured = measured
        self.parameters = measured + others
        self.start = [p.detach().clone() for p in self.parameters]
        self.changes: list[th.Tensor] = []
        self.n_updates_seen = 0

    def _init_callback(self) -> None:
        self.n_updates_seen = self.model._n_updates

    def record_change(self) -> None:
        if self.model._n_updates > self.n_updates_seen:
            self.n_updates_seen = self.model._n_updates
            self.changes.append(
                th.cat([(p.detach() - start).flatten() for p, start in zip(self.measured, self.start, strict=False)])
            )

    def _on_rollout_start(self) -> None:
        self.record_change()
        with th.no_grad():
            for parameter, start in zip(self.parameters, self.start, strict=True):
                parameter.copy_(start)

    def _on_step(self) -> bool:
        return True


class StopAfter(BaseCallback):
    """
    Stop learning once enough updates have been recorded.

    :param recorder: The callback recording the updates
    :param n_updates: How many updates to record
    """

    def __init__(self, recorder: ResetParameters, n_updates: int):
        super().__init__()
        self.recorder = recorder
        self.n_updates = n_updates

    def _on_step(self) -> bool:
        return len(self.recorder.changes) < self.n_updates


def sgd_model(gamma: float, seed: int = 0, **vpg_kwargs: Any) -> VPG:
    """
    VPG with plain SGD at learning rate 1 on the enumerable MDP, θ0 random, and a value head far from zero.

    :param gamma: The discount factor
    :param seed: Seed of θ0 and of the sampling
    :param vpg_kwargs: The estimator's options (``reward_to_go``, ``baseline``, ...)
    """
    model = VPG(
        "MlpPolicy",
        make_enumerable_mdp(HORIZON),
        learning_rate=1.0,
        n_episodes=EPISODES_PER_UPDATE,
        gamma=gamma,
        policy_kwargs=dict(net_arch=[], optimizer_class=th.optim.SGD),
        seed=seed,
        **vpg_kwargs,
    )
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        model.policy.action_net.weight.copy_(th.randn(model.policy.action_net.weight.shape, generator=generator))
        model.policy.action_net.bias.copy_(th.randn(model.policy.action_net.bias.shape, generator=generator))
        model.policy.value_net.bias.fill_(VALUE_BIAS)
    return model


def mean_update(model: VPG, n_updates: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Mean and standard error of ``n_updates`` independent updates of the action network from the same θ and V.

    :param model: A model from :func:`sgd_model`
    :param n_updates: How many updates to average
    """
    recorder = ResetParameters(list(model.policy.action_net.parameters()), list(model.policy.value_net.parameters()))
    while len(recorder.changes) < n_updates:
        model.learn(total_timesteps=1_000_000, callback=[recorder, StopAfter(recorder, n_updates)], reset_num_timesteps=False)
    changes = th.stack(recorder.changes[:n_updates]).double().cpu().numpy()
    return changes.mean(axis=0), changes.std(axis=0, ddof=1) / np.sqrt(len(changes))
