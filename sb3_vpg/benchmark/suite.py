"""
What the benchmark runs: the environments with their budgets, the algorithms with the file their hyperparameters
come from, and one :class:`RunSpec` per algorithm × env × seed.

Every algorithm reads its hyperparameters through rl-zoo3's own ``ExperimentManager``, from rl-zoo3's YAML format,
so that ``python -m sb3_vpg.zoo train --algo vpg`` (or ``python -m rl_zoo3.train --algo a2c``) and the benchmark
train with the same numbers: VPG from the package's ``hyperparams/`` folder, A2C and PPO from the ``a2c.yml`` and
``ppo.yml`` that rl-zoo3 installs.
"""

import argparse
import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_zoo3.exp_manager import ExperimentManager

from sb3_vpg.zoo import ALGO as VPG_ALGO
from sb3_vpg.zoo import DEFAULT_CONFIG as VPG_BEST_CONFIG
from sb3_vpg.zoo import register

#: Plain Eq. (4): R(τ), no baseline, γ = 1; only the learning rate and the batch are set per env.
VPG_PLAIN_CONFIG = VPG_BEST_CONFIG.with_name("vpg_plain.yml")


@dataclass(frozen=True)
class Algorithm:
    """
    One line of the results table.

    :param zoo_algo: rl-zoo3's name of the algorithm (``--algo``)
    :param config: The hyperparameter file; ``None`` for rl-zoo3's own ``hyperparams/<zoo_algo>.yml``
    :param learns: ``False`` for the rollout-collection ceiling: the envs and policy of ``config``, stepped without
        learning
    """

    zoo_algo: str
    config: Path | None = None
    learns: bool = True


#: The algorithms, in table order. The ceiling steps vpg-best's envs with its policy, as SB3's rollout loop does.
ALGORITHMS: dict[str, Algorithm] = {
    "vpg-plain": Algorithm(VPG_ALGO, VPG_PLAIN_CONFIG),
    "vpg-best": Algorithm(VPG_ALGO, VPG_BEST_CONFIG),
    "a2c": Algorithm("a2c"),
    "ppo": Algorithm("ppo"),
    "rollout-ceiling": Algorithm(VPG_ALGO, VPG_BEST_CONFIG, learns=False),
}


@dataclass(frozen=True)
class EnvSetting:
    """
    How long each algorithm trains on an env, and how often it is evaluated.

    :param budget: Training timesteps, the same for every algorithm
    :param eval_every: Timesteps between two evaluations of the deterministic policy
    """

    budget: int
    eval_every: int


#: The default suite (sized to fit in about an hour on 2 cores). Thresholds are gymnasium's ``reward_threshold``.
ENVS: dict[str, EnvSetting] = {
    "CartPole-v1": EnvSetting(budget=300_000, eval_every=10_000),
    "Acrobot-v1": EnvSetting(budget=200_000, eval_every=10_000),
    "Pendulum-v1": EnvSetting(budget=200_000, eval_every=10_000),
    "LunarLander-v3": EnvSetting(budget=300_000, eval_every=15_000),
}

#: Timesteps the rollout-collection ceiling steps (at most the env's budget): enough for a stable rate.
CEILING_STEPS = 20_000

#: ``--quick``: a few thousand steps per env, to check that everything runs and the report is written.
QUICK_ENV = EnvSetting(budget=4_000, eval_every=2_000)


@dataclass(frozen=True)
class RunSpec:
    """
    One run: an algorithm trained (or, for the ceiling, stepped) on an env with one seed.

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    :param seed: The seed of the envs and the model
    :param budget: Training timesteps (for the ceiling: timesteps stepped, at most :data:`CEILING_STEPS`)
    :param eval_every: Timesteps between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    :param device: The torch device
    :param hyperparams: The hyperparameters read from the algorithm's file, to tell whether a stored result is stale
    """

    algorithm: str
    env_id: str
    seed: int
    budget: int
    eval_every: int
    n_eval_episodes: int
    device: str
    hyperparams: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.algorithm} {self.env_id} seed {self.seed}"


def experiment_manager(algorithm: str, env_id: str, seed: int, budget: int, log_folder: str, device: str) -> ExperimentManager:
    """
    rl-zoo3's experiment manager for one run, with the algorithm's hyperparameter file and no callbacks of its own
    (no evaluation, no checkpoints: the benchmark evaluates).

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    :param seed: The seed of the envs and the model
    :param budget: Training timesteps (overrides the file's ``n_timesteps``)
    :param log_folder: Where rl-zoo3 writes the run's config and monitor files
    :param device: The torch device
    """
    register()
    spec = ALGORITHMS[algorithm]
    args = argparse.Namespace(algo=spec.zoo_algo, env=env_id, seed=seed, n_timesteps=budget, conf_file=spec.config)
    return ExperimentManager(
        args,
        spec.zoo_algo,
        env_id,
        log_folder,
        n_timesteps=budget,
        eval_freq=-1,
        seed=seed,
        verbose=0,
        device=device,
        config=None if spec.config is None else str(spec.config),
    )


def read_hyperparams(algorithm: str, env_id: str) -> dict[str, Any]:
    """
    The hyperparameters of ``algorithm`` for ``env_id``, as rl-zoo3 reads them (the env's entry, else ``default``).

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    """
    manager = experiment_manager(algorithm, env_id, seed=0, budget=0, log_folder="", device="cpu")
    with contextlib.redirect_stdout(io.StringIO()):  # rl-zoo3 prints them
        return dict(manager.read_hyperparameters()[1])


def run_specs(
    algorithms: list[str],
    envs: dict[str, EnvSetting],
    n_seeds: int,
    n_eval_episodes: int,
    device: str,
) -> list[RunSpec]:
    """
    Every run of the suite, env by env, then algorithm by algorithm, then seed by seed.

    :param algorithms: Keys of :data:`ALGORITHMS`
    :param envs: The envs and their settings
    :param n_seeds: Seeds per algorithm and env (0, 1, ...)
    :param n_eval_episodes: Episodes per evaluation
    :param device: The torch device
    """
    specs = []
    for env_id, setting in envs.items():
        for algorithm in algorithms:
            budget = setting.budget if ALGORITHMS[algorithm].learns else min(setting.budget, CEILING_STEPS)
            hyperparams = read_hyperparams(algorithm, env_id)
            specs += [
                RunSpec(algorithm, env_id, seed, budget, setting.eval_every, n_eval_episodes, device, hyperparams)
                for seed in range(n_seeds)
            ]
    return specs
