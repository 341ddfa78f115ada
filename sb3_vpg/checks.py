"""Checks of what users and envs hand to VPG, each failing with a message that says what is wrong and what is allowed."""

import io
import json
import pathlib
import zipfile
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.save_util import open_path
from stable_baselines3.common.type_aliases import Schedule

from sb3_vpg.buffers import EpisodeRolloutBuffer
from sb3_vpg.estimators import ESTIMATORS, estimator_for

#: The largest magnitude a float32 holds: observations and rewards beyond it become infinite in the policy and buffer.
FLOAT32_MAX = float(np.finfo(np.float32).max)

SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
#: Observation spaces VPG's policies take; a Dict of them (not nested) too.
SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)

#: Keywords of A2C and PPO that have no meaning for VPG, with the reason given to whoever passes them.
REFUSED_KEYWORDS = {
    "batch_size": "PPO's minibatch size; VPG takes one gradient step on the whole batch (set n_steps or n_episodes; "
    "chunk_size splits the update's forward/backward passes to bound memory without changing its gradient)",
    "n_epochs": "PPO's passes over each batch; VPG takes exactly one gradient step per batch, as Algorithm 1 does",
    "clip_range": "PPO's clipping of the probability ratio; VPG's loss is Eq. (4), with no ratio to clip",
    "clip_range_vf": "PPO's clipping of the value update; VPG's value head is a plain regression (baseline='value')",
    "target_kl": "PPO's early stop on the KL divergence; VPG takes one step per batch, so there is nothing to stop",
    "use_rms_prop": "A2C's optimiser switch; choose VPG's optimiser with policy_kwargs=dict(optimizer_class=...)",
    "rms_prop_eps": "A2C's RMSprop epsilon; pass it with policy_kwargs=dict(optimizer_kwargs=dict(eps=...))",
}

#: A saved attribute that only one algorithm has, and that algorithm: how a zip that is not VPG's is recognised.
#: VPG's own zips all hold ``n_episodes``; A2C is the on-policy algorithm with ``n_steps`` and none of the others.
SAVED_SIGNATURES = (
    ("n_episodes", "VPG"),
    ("clip_range", "PPO"),
    ("cg_max_steps", "TRPO"),
    ("n_delta", "ARS"),
    ("exploration_rate", "DQN"),
    ("target_entropy", "SAC"),
    ("policy_delay", "TD3"),
    ("n_steps", "A2C"),
)
#: The algorithms whose policy is an ActorCriticPolicy, which VPG can take over
ACTOR_CRITIC_ALGORITHMS = ("A2C", "PPO", "TRPO")


def refuse_keywords(keywords: dict[str, Any]) -> None:
    """
    Raise a ``TypeError`` for keywords VPG does not take, saying why when they come from A2C or PPO.

    :param keywords: The keyword arguments VPG's constructor did not recognise
    """
    for name in keywords:
        reason = REFUSED_KEYWORDS.get(name, "it is not a parameter of VPG, A2C or PPO")
        raise TypeError(f"VPG does not take the keyword {name!r}: {reason}.")


def _is_count(value: Any, minimum: int) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``minimum``."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and bool(value >= minimum)


def check_arguments(
    learning_rate: float | Schedule,
    n_steps: int | None,
    n_episodes: int | None,
    gamma: float,
    reward_to_go: bool,
    baseline: str | None,
    gae_lambda: float,
    vf_coef: float,
    n_value_steps: int,
    max_grad_norm: float | None,
    chunk_size: int | None,
    max_episode_steps: int,
    rollout_buffer_class: type[RolloutBuffer] | None,
    rollout_buffer_kwargs: dict[str, Any] | None,
    collective_timeout: float,
) -> None:
    """Raise a ``ValueError`` or ``TypeError`` naming the first of VPG's arguments that it cannot use."""
    if n_steps is not None and n_episodes is not None:
        raise ValueError(
            f"Give the batch either in steps or in episodes, not both: got n_steps={n_steps} and n_episodes={n_episodes}."
        )
    counts = {"n_steps": n_steps, "n_episodes": n_episodes, "chunk_size": chunk_size, "max_episode_steps": max_episode_steps}
    for name, value in counts.items():
        if value is not None and not _is_count(value, 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not callable(learning_rate) and not learning_rate >= 0:
        raise ValueError(f"learning_rate must be a non-negative number or a schedule, got {learning_rate!r}.")
    for name, fraction in (("gamma", gamma), ("gae_lambda", gae_lambda)):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {fraction!r}.")
    estimator = estimator_for(reward_to_go, baseline)
    if n_episodes is not None and n_episodes < estimator.min_episodes:
        raise ValueError(
            f"baseline={baseline!r} needs n_episodes >= {estimator.min_episodes}: the mean over one episode is that "
            "episode's own return, so every weight would be 0."
        )
    if gae_lambda != 1.0 and not estimator.takes_gae_lambda:
        takers = " or ".join(
            f"reward_to_go={e.reward_to_go}, baseline={e.baseline!r}" for e in ESTIMATORS if e.takes_gae_lambda
        )
        raise ValueError(
            f"gae_lambda={gae_lambda} needs {takers} (GAE discounts the reward-to-go against a learned V(s)); "
            f"got reward_to_go={reward_to_go}, baseline={baseline!r}."
        )
    if not collective_timeout > 0:
        raise ValueError(f"collective_timeout must be a positive number of seconds, got {collective_timeout!r}.")
    if not vf_coef >= 0:
        raise ValueError(f"vf_coef must be non-negative, got {vf_coef!r}.")
    if not _is_count(n_value_steps, 0):
        raise ValueError(f"n_value_steps must be a non-negative integer, got {n_value_steps!r}.")
    if n_value_steps > 0 and not estimator.needs_values:
        raise ValueError(
            f"n_value_steps={n_value_steps} fits the value head, which only baseline='value' uses; got baseline={baseline!r}."
        )
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None (no clipping), got {max_grad_norm!r}.")
    if rollout_buffer_class is not None and not issubclass(rollout_buffer_class, EpisodeRolloutBuffer):
        raise TypeError(
            "rollout_buffer_class must be a subclass of sb3_vpg.buffers.EpisodeRolloutBuffer (VPG trains on whole "
            f"episodes), got {rollout_buffer_class.__name__}."
        )
    if rollout_buffer_kwargs is not None and "max_episode_steps" in rollout_buffer_kwargs:
        raise ValueError("Give max_episode_steps to VPG itself, not in rollout_buffer_kwargs.")


def check_episodes_per_rank(n_episodes: int | None, world_size: int) -> None:
    """
    Raise a ``ValueError`` when the batch's ``n_episodes`` cannot give every rank of a data-parallel run an episode.

    :param n_episodes: VPG's ``n_episodes`` (``None``: the batch is in steps)
    :param world_size: The number of processes training together (:func:`sb3_vpg.distributed.world_size`)
    """
    if n_episodes is not None and n_episodes < world_size:
        raise ValueError(
            f"n_episodes={n_episodes} is the whole batch, shared by the {world_size} processes training together, each "
            f"of which collects at least one episode per update: give n_episodes >= {world_size}, or fewer processes."
        )


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """
    Raise a ``ValueError`` when VPG's policies cannot handle the env's spaces.

    :param observation_space: The env's observation space
    :param action_space: The env's action space
    """
    if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
        allowed = ", ".join(space.__name__ for space in SUPPORTED_ACTION_SPACES)
        raise ValueError(f"env: VPG supports the action spaces {allowed}; got {action_space}.")
    observation_spaces = (
        observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    )
    for space in observation_spaces:
        if not isinstance(space, SUPPORTED_OBSERVATION_SPACES):
            allowed = ", ".join(space.__name__ for space in SUPPORTED_OBSERVATION_SPACES)
            raise ValueError(
                f"env: VPG supports the observation spaces {allowed} and a Dict of them; got {observation_space}."
            )


def check_finite(observations: np.ndarray | dict[str, np.ndarray], rewards: Any, timestep: int) -> None:
    """
    Raise a ``ValueError`` naming what the env returned that is not finite, or that float32 cannot hold, before it can
    reach the weights: the policy computes on float32 observations and the buffer stores float32 rewards, so a float64
    value beyond float32's range would become infinite there.

    :param observations: The observations of one ``VecEnv.step`` or ``reset`` (an array, or a dict of arrays)
    :param rewards: The rewards of that step, one per env (any sequence of numbers); ``None`` after a reset
    :param timestep: The model's timestep, for the message
    """
    arrays = observations if isinstance(observations, dict) else {"": observations}
    named = {f"observation{f'[{key!r}]' if key else ''}": np.asarray(array) for key, array in arrays.items()}
    if rewards is not None:
        named = {"reward": np.asarray(rewards), **named}
    for name, array in named.items():
        if not np.issubdtype(array.dtype, np.floating):
            continue
        within = np.abs(array) <= FLOAT32_MAX  # one pass: False for NaN, ±inf and what float32 cannot hold
        if within.all():
            continue
        if not np.isfinite(array).all():
            envs = np.unique(np.nonzero(~np.isfinite(array))[0]).tolist()
            raise ValueError(f"The env returned a non-finite {name} (in env {envs}) at timestep {timestep}: {array}.")
        envs = np.unique(np.nonzero(~within)[0]).tolist()
        raise ValueError(
            f"The env returned a {name} beyond float32's range (|x| = {np.abs(array).max():.3g} > {FLOAT32_MAX:.3g}, "
            f"in env {envs}) at timestep {timestep}: the policy computes in float32, where it would be infinite. "
            f"Scale the {name.split('[')[0]}s down (VecNormalize, or a gymnasium wrapper)."
        )


def check_policy(policy: str | type, aliases: dict[str, type]) -> None:
    """
    Raise when ``policy`` is neither one of VPG's policy names nor an ``ActorCriticPolicy`` subclass.

    :param policy: The policy given to VPG: a name or a class
    :param aliases: The names VPG knows, mapped to their classes
    """
    if isinstance(policy, str):
        if policy not in aliases:
            raise ValueError(f"policy: unknown policy name {policy!r}; VPG knows {', '.join(aliases)}.")
    elif not (isinstance(policy, type) and issubclass(policy, ActorCriticPolicy)):
        raise TypeError(f"policy must be a policy name or a subclass of ActorCriticPolicy, got {policy!r}.")


def saved_algorithm(path: str | pathlib.Path | io.BufferedIOBase) -> str | None:
    """
    The algorithm whose ``save()`` wrote the zip at ``path``, recognised by :data:`SAVED_SIGNATURES`; ``None`` when
    the file is not such a zip (``load`` then says what is wrong with it). A file object is read from where it stands
    and put back there.

    :param path: The zip, as ``VPG.load`` takes it
    """
    file = open_path(path, "r", suffix="zip")
    start = file.tell()
    try:
        with zipfile.ZipFile(file) as archive:
            keys = set(json.loads(archive.read("data")))
    except (zipfile.BadZipFile, KeyError, ValueError):
        return None
    finally:
        if file is path:
            file.seek(start)
        else:
            file.close()
    return next((algorithm for key, algorithm in SAVED_SIGNATURES if key in keys), "an algorithm other than VPG")


def check_saved_algorithm(path: str | pathlib.Path | io.BufferedIOBase) -> None:
    """
    Raise a ``ValueError`` when the zip at ``path`` was saved by an algorithm other than VPG, naming it and saying how
    to load it, or just its policy.

    :param path: The zip, as ``VPG.load`` takes it
    """
    algorithm = saved_algorithm(path)
    if algorithm in (None, "VPG"):
        return
    message = f"VPG.load: {path} holds a model saved by {algorithm}, not by VPG"
    if algorithm not in dict(SAVED_SIGNATURES).values():
        raise ValueError(f"{message}: load it with the algorithm that saved it.")
    message += f". Load it with {algorithm}.load(path)"
    if algorithm in ACTOR_CRITIC_ALGORITHMS:
        message += (
            f". To start VPG from its policy (an ActorCriticPolicy, as VPG's): build VPG with the same policy and "
            f"policy_kwargs, then model.policy.load_state_dict({algorithm}.load(path).policy.state_dict())."
        )
    else:
        message += "; its policy is not an ActorCriticPolicy, so VPG cannot take it over."
    raise ValueError(message)
