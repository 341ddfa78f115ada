"""Checks of what users and envs hand to VPG, each failing with a message that says what is wrong and what is allowed."""

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)

#: Keywords of A2C and PPO that have no meaning for VPG, with the reason given to whoever passes them.
REFUSED_KEYWORDS = {
    "batch_size": "PPO's minibatch size; VPG takes one gradient step on the whole batch (set n_steps or n_episodes)",
    "n_epochs": "PPO's passes over each batch; VPG takes exactly one gradient step per batch, as Algorithm 1 does",
    "clip_range": "PPO's clipping of the probability ratio; VPG's loss is Eq. (4), with no ratio to clip",
    "clip_range_vf": "PPO's clipping of the value update; VPG's value head is a plain regression (baseline='value')",
    "target_kl": "PPO's early stop on the KL divergence; VPG takes one step per batch, so there is nothing to stop",
    "use_rms_prop": "A2C's optimiser switch; choose VPG's optimiser with policy_kwargs=dict(optimizer_class=...)",
    "rms_prop_eps": "A2C's RMSprop epsilon; pass it with policy_kwargs=dict(optimizer_kwargs=dict(eps=...))",
}


def refuse_keywords(keywords: dict[str, Any]) -> None:
    """
    Raise a ``TypeError`` for keywords VPG does not take, saying why when they come from A2C or PPO.

    :param keywords: The keyword arguments VPG's constructor did not recognise
    """
    for name in keywords:
        reason = REFUSED_KEYWORDS.get(name, "it is not a parameter of VPG, A2C or PPO")
        raise TypeError(f"VPG does not take the keyword {name!r}: {reason}.")


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """
    Raise a ``ValueError`` when VPG's policies cannot handle the env's spaces.

    :param observation_space: The env's observation space
    :param action_space: The env's action space
    """
    if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
        allowed = ", ".join(space.__name__ for space in SUPPORTED_ACTION_SPACES)
        raise ValueError(f"env: VPG supports the action spaces {allowed}; got {action_space}.")
    if not isinstance(observation_space, SUPPORTED_OBSERVATION_SPACES):
        allowed = ", ".join(space.__name__ for space in SUPPORTED_OBSERVATION_SPACES)
        raise ValueError(f"env: VPG supports the observation spaces {allowed}; got {observation_space}.")


def check_finite(observations: np.ndarray | dict[str, np.ndarray], rewards: np.ndarray, timestep: int) -> None:
    """
    Raise a ``ValueError`` naming what the env returned that is not finite, before it can reach the weights.

    :param observations: The observations of one ``VecEnv.step`` (an array, or a dict of arrays)
    :param rewards: The rewards of that step, one per env
    :param timestep: The model's timestep, for the message
    """
    arrays = observations if isinstance(observations, dict) else {"": observations}
    named = {f"observation{f'[{key!r}]' if key else ''}": array for key, array in arrays.items()}
    for name, array in {"reward": rewards, **named}.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            envs = np.unique(np.nonzero(~np.isfinite(array))[0]).tolist()
            raise ValueError(f"The env returned a non-finite {name} (in env {envs}) at timestep {timestep}: {array}.")


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
