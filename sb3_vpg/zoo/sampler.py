"""Optuna search space of VPG's own hyperparameters, in the form rl-zoo3's ``-optimize`` expects."""

import os
import socket
from typing import Any

import optuna
from torch import nn

#: Network sizes the sampler chooses from (the value head is used with ``baseline="value"`` only).
NET_ARCHS = {
    "tiny": dict(pi=[32], vf=[32]),
    "small": dict(pi=[64, 64], vf=[64, 64]),
    "medium": dict(pi=[128, 128], vf=[128, 128]),
}
ACTIVATION_FNS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def sample_vpg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
    """
    Sample VPG hyperparameters: learning rate, batch in episodes or in steps, gamma, the estimator options
    (reward-to-go, baseline, value-fitting steps, GAE λ, advantage normalisation) and the network size.

    Options that only make sense together are sampled together: ``n_value_steps`` only with a learned baseline,
    ``gae_lambda`` only with reward-to-go and a learned baseline, ``n_episodes`` or ``n_steps`` depending on the
    sampled batch unit.

    :param trial: The Optuna trial to sample from
    :param n_actions: Unused (rl-zoo3's sampler signature)
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
        # At least 2: with one episode, baseline="mean" would zero every weight (VPG refuses it).
        params["n_episodes"] = trial.suggest_categorical("n_episodes", [2, 4, 8, 16, 32, 64])
    else:
        params["n_steps"] = trial.suggest_categorical("n_steps", [128, 256, 512, 1024, 2048, 4096, 8192])
    params["gamma"] = trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0])
    params["reward_to_go"] = trial.suggest_categorical("reward_to_go", [False, True])
    params["baseline"] = trial.suggest_categorical("baseline", ["none", "mean", "value"])
    if params["baseline"] == "value":
        params["n_value_steps"] = trial.suggest_categorical("n_value_steps", [0, 10, 40, 80])
    if params["reward_to_go"] and params["baseline"] == "value":
        params["gae_lambda"] = trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.95, 0.98, 0.99, 1.0])
    params["normalize_advantage"] = trial.suggest_categorical("normalize_advantage", [False, True])
    params["net_arch"] = trial.suggest_categorical("net_arch", list(NET_ARCHS))
    params["activation_fn"] = trial.suggest_categorical("activation_fn", list(ACTIVATION_FNS))
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
    net_arch = NET_ARCHS[params.pop("net_arch")]
    activation_fn = ACTIVATION_FNS[params.pop("activation_fn")]
    baseline = params.pop("baseline")
    return {
        **params,
        "n_episodes": params.get("n_episodes") if unit == "episodes" else None,
        "n_steps": params.get("n_steps") if unit == "steps" else None,
        "baseline": None if baseline == "none" else baseline,
        "gae_lambda": params.get("gae_lambda", 1.0),
        "n_value_steps": params.get("n_value_steps", 0),
        "policy_kwargs": dict(net_arch=net_arch, activation_fn=activation_fn),
    }
