"""The samples VPG's rollout buffers hand out, declared beside SB3's ``RolloutBufferSamples``."""

from typing import NamedTuple

import torch as th
from stable_baselines3.common.type_aliases import TensorDict


class EpisodeRolloutBufferSamples(NamedTuple):
    """
    Steps of complete episodes, flat, episode after episode.

    :param observations: s_t
    :param actions: a_t (float32, as in SB3's samples)
    :param returns: The reward-to-go G_t, the value head's regression target
    :param advantages: The weight of log π(a_t|s_t) in the loss: R(τ) in Eq. (4), or the chosen estimator's weight
    """

    observations: th.Tensor
    actions: th.Tensor
    returns: th.Tensor
    advantages: th.Tensor


class DictEpisodeRolloutBufferSamples(NamedTuple):
    """:class:`EpisodeRolloutBufferSamples` with Dict observations."""

    observations: TensorDict
    actions: th.Tensor
    returns: th.Tensor
    advantages: th.Tensor
