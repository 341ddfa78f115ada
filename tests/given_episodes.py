"""
One update on given episodes: the same episodes trained in one process, or split across the ranks of a distributed
run (``tests/distributed_worker.py``), so that the two updates can be compared (``tests/test_distributed.py``).

The episodes (observations, actions, rewards, lengths) come from a seeded generator, so every process rebuilds the
same ones; each is written into the model's buffer step by step, through ``add()``, as collection would, and the
update is the model's own ``train()``. The policy computes in float64 (:mod:`tests.rounding`).
"""

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor

from sb3_vpg import VPG
from sb3_vpg.estimators import ESTIMATORS
from tests.helpers_sb3 import recording_logger
from tests.rounding import in_float64, make_float64

#: Observation and action spaces of the cases: a vector with discrete actions, a Discrete observation with continuous
#: actions, a Dict observation with MultiDiscrete actions.
SPACES = {
    "box": (spaces.Box(-2, 2, shape=(3,), dtype=np.float32), spaces.Discrete(3)),
    "discrete": (spaces.Discrete(5), spaces.Box(-1, 1, shape=(2,), dtype=np.float32)),
    "dict": (
        spaces.Dict({"position": spaces.Box(-2, 2, shape=(2,), dtype=np.float32), "cell": spaces.Discrete(4)}),
        spaces.MultiDiscrete([2, 3]),
    ),
}
#: Episodes of the batch, of 1 to 6 steps, split across the ranks in turn
N_EPISODES = 7
LEARNING_RATE = 0.01


class GivenSpaces(gym.Env):
    """An env with the case's spaces: VPG is built on it, the episodes are written into its buffer by hand."""

    def __init__(self, kind: str) -> None:
        self.observation_space, self.action_space = SPACES[kind]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


@dataclass(frozen=True)
class Case:
    """
    One update to compare: the spaces, VPG's estimator keywords, the optimiser and its clipping.

    :param kind: The spaces (:data:`SPACES`)
    :param options: VPG's keywords
    :param optimizer: ``"sgd"`` or ``"adam"``
    :param empty_rank: The last rank gets no episode (the others share them all)
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "sgd"
    empty_rank: bool = False

    @property
    def name(self) -> str:
        options = "-".join(f"{key}={value}" for key, value in self.options.items())
        return f"{self.kind}-{self.optimizer}-{options}{'-empty-rank' if self.empty_rank else ''}"


def _estimator_options(estimator: Any, value_steps: int) -> dict[str, Any]:
    options: dict[str, Any] = dict(reward_to_go=estimator.reward_to_go, baseline=estimator.baseline)
    if estimator.takes_gae_lambda:
        options["gae_lambda"] = 0.9
    if estimator.needs_values and value_steps:
        options["n_value_steps"] = value_steps
    return options


#: Every estimator on every pair of spaces, with normalisation, an entropy bonus and 2 value steps (SGD, whose
#: parameters move by the learning rate times the gradient); every estimator with Adam, one step (its moments compared
#: too); a clipped gradient.
CASES = [
    *(
        Case(kind, dict(**_estimator_options(estimator, 2), normalize_advantage=True, ent_coef=0.05))
        for kind in SPACES
        for estimator in ESTIMATORS
    ),
    *(Case("box", _estimator_options(estimator, 0), "adam") for estimator in ESTIMATORS),
    Case("box", dict(reward_to_go=True, baseline="value", max_grad_norm=0.05)),
    Case("box", dict(reward_to_go=True, baseline="mean", normalize_advantage=True), empty_rank=True),
]


def episodes(kind: str) -> list[dict[str, np.ndarray]]:
    """The batch's episodes for the spaces of ``kind``: the same in every process."""
    observation_space, action_space = SPACES[kind]
    observation_space.seed(7)
    action_space.seed(11)
    generator = np.random.default_rng(3)
    batch = []
    for _ in range(N_EPISODES):
        length = int(generator.integers(1, 7))
        batch.append(
            dict(
                observations=[observation_space.sample() for _ in range(length)],
                actions=np.array([action_space.sample() for _ in range(length)]),
                rewards=generator.normal(1.0, 2.0, size=length).astype(np.float32),
            )
        )
    return batch


def rank_episodes(case: Case, rank: int, world_size: int) -> list[dict[str, np.ndarray]]:
    """Rank ``rank``'s part of the batch: episodes ``rank``, ``rank + world_size``, … (none for an empty rank)."""
    sharing = world_size - 1 if case.empty_rank else world_size
    return episodes(case.kind)[rank::sharing] if rank < sharing else []


def make_model(case: Case, chunk_size: int | None = None) -> VPG:
    """VPG for the case, its policy in float64, seeded alike in every process, logging to a recorder."""
    is_dict = case.kind == "dict"
    extractor = in_float64(CombinedExtractor if is_dict else FlattenExtractor)
    optimizer = th.optim.SGD if case.optimizer == "sgd" else th.optim.Adam
    policy_kwargs = dict(net_arch=[8], features_extractor_class=extractor, optimizer_class=optimizer)
    model = VPG(
        "MultiInputPolicy" if is_dict else "MlpPolicy",
        GivenSpaces(case.kind),
        learning_rate=LEARNING_RATE,
        n_episodes=3,
        gamma=0.9,
        chunk_size=chunk_size,
        policy_kwargs=policy_kwargs,
        seed=0,
        **case.options,
    )
    make_float64(model)
    model.set_logger(recording_logger()[0])
    return model


def fill(model: VPG, batch: list[dict[str, np.ndarray]]) -> None:
    """Write the episodes into the model's buffer, step by step, as collection would (one env)."""
    for episode in batch:
        length = len(episode["rewards"])
        for t in range(length):
            observation = episode["observations"][t]
            if isinstance(observation, dict):
                observation = {key: np.asarray(value)[None] for key, value in observation.items()}
            else:
                observation = np.asarray(observation)[None]
            model.rollout_buffer.add(
                observation,
                np.asarray(episode["actions"][t])[None],
                episode["rewards"][t : t + 1],
                np.array([t == 0]),
                done=np.array([t == length - 1]),
            )


def update(model: VPG) -> dict[str, Any]:
    """The model's update on the episodes in its buffer: the parameters, the optimiser's state and the logged values."""
    model.train()
    assert model._n_updates == 1
    optimizer_state = model.policy.optimizer.state_dict()["state"]
    names = [name for name, _ in model.policy.named_parameters()]
    return dict(
        parameters={name: value.detach().clone() for name, value in model.policy.named_parameters()},
        optimizer={
            f"{names[index]}.{key}": value.clone() if isinstance(value, th.Tensor) else th.tensor(float(value))
            for index, state in optimizer_state.items()
            for key, value in state.items()
        },
        logged=dict(model.logger.name_to_value),
    )
