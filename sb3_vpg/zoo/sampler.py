"""Optuna search space of VPG's own hyperparameters, in the form rl-zoo3's ``-optimize`` expects."""

import os
import socket
from typing import Any

import optuna
from torch import nn

from sb3_vpg.estimators import ESTIMATORS, estimator_named

#: Network sizes the sampler chooses from (the value head is used with ``baseline="value"`` only).
NET_ARCHS = {
    "tiny": dict(pi=[32], vf=[32]),
    "small": dict(pi=[64, 64], vf=[64, 64]),
    "medium": dict(pi=[128, 128], vf=[128, 128]),
}
ACTIVATION_FNS = {"tanh": nn.Tanh, "relu": nn.ReLU}

#: Initial log standard deviations of a Gaussian policy the sampler chooses from (continuous actions only): on MuJoCo a
#: smaller initial exploration noise than SB3's σ = 1 decided whether HalfCheetah learned at all (the docs' Benchmark).
LOG_STD_INITS = (-2.0, -1.0, 0.0)


#: Episodes per batch the sampler chooses from: those with which every estimator's weights can be non-zero.
N_EPISODES = tuple(n for n in (1, 2, 4, 8, 16, 32, 64) if n >= max(estimator.min_episodes for estimator in ESTIMATORS))


def sample_vpg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
    """
    Sample VPG hyperparameters: learning rate, batch in episodes or in steps, gamma, the estimator (one of
    :data:`~sb3_vpg.estimators.ESTIMATORS`, with GAE λ and value-fitting steps where it takes them), advantage
    normalisation, the network size, and for continuous actions the initial log standard deviation.

    :param trial: The Optuna trial to sample from
    :param n_actions: The size of a ``Box`` action space, 0 for the others (as rl-zoo3 passes it)
    :param n_envs: Unused (rl-zoo3's sampler signature)
    :param additional_args: Unused (rl-zoo3's sampler signature)
    :return: Keyword arguments for :class:`~sb3_vpg.VPG`
    """
    # Which worker of a sweep ran the trial (host and process), for studies shared through ``--storage``.
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True),
        "batch_unit": trial.suggest_categorical("batch_unit", ["episodes", "steps"]),
    }
    if params["batch_unit"] == "episodes":
        params["n_episodes"] = trial.suggest_categorical("n_episodes", N_EPISODES)
    else:
        params["n_steps"] = trial.suggest_categorical("n_steps", [128, 256, 512, 1024, 2048, 4096, 8192])
    params["gamma"] = trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0])
    params["estimator"] = trial.suggest_categorical("estimator", [estimator.name for estimator in ESTIMATORS])
    estimator = estimator_named(params["estimator"])
    if estimator.needs_values:
        params["n_value_steps"] = trial.suggest_categorical("n_value_steps", [0, 10, 40, 80])
    if estimator.takes_gae_lambda:
        params["gae_lambda"] = trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.95, 0.98, 0.99, 1.0])
    params["normalize_advantage"] = trial.suggest_categorical("normalize_advantage", [False, True])
    params["net_arch"] = trial.suggest_categorical("net_arch", list(NET_ARCHS))
    params["activation_fn"] = trial.suggest_categorical("activation_fn", list(ACTIVATION_FNS))
    if n_actions > 0:
        params["log_std_init"] = trial.suggest_categorical("log_std_init", LOG_STD_INITS)
    return convert_vpg_params(params)


def convert_vpg_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the parameters of a trial into keyword arguments for :class:`~sb3_vpg.VPG`.

    Every batch and estimator option is set, so that the sample fully replaces what the config file gives
    (a config with ``n_episodes`` and a sample with ``n_steps`` would otherwise give VPG both).

    :param sampled_params: The parameters of a trial, as :func:`sample_vpg_params` samples them
    :return: Keyword arguments for :class:`~sb3_vpg.VPG`
    """
    params = dict(sampled_params)
    unit = params.pop("batch_unit")
    policy_kwargs = dict(net_arch=NET_ARCHS[params.pop("net_arch")], activation_fn=ACTIVATION_FNS[params.pop("activation_fn")])
    if "log_std_init" in params:
        policy_kwargs["log_std_init"] = params.pop("log_std_init")
    estimator = estimator_named(params.pop("estimator"))
    return {
        **params,
        "n_episodes": params.get("n_episodes") if unit == "episodes" else None,
        "n_steps": params.get("n_steps") if unit == "steps" else None,
        "reward_to_go": estimator.reward_to_go,
        "baseline": estimator.baseline,
        "gae_lambda": params.get("gae_lambda", 1.0),
        "n_value_steps": params.get("n_value_steps", 0),
        "policy_kwargs": policy_kwargs,
    }
