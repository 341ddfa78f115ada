"""
What carrying unfinished episodes over costs: the share of ``learn()``'s time spent in the buffer's whole-episode
bookkeeping, measured with cProfile on VPG with the batch in steps (so that episodes are cut at every rollout's end).

The bookkeeping is what SB3's own rollout buffer does not do: ``discard_consumed`` (moving the running episodes to the
front of the buffer), ``complete_episodes`` (selecting the complete ones and flattening them) and the part of ``add``
outside SB3's own ``add`` (episode lengths, ``dones``, growing the buffer with ``_resize``). cProfile slows down every
Python call, so the shares are upper bounds of what they are without it.

    python -m benchmarks carry-over --envs CartPole-v1 LunarLander-v3 --n-envs 1 8 --steps 50000
"""

import argparse
import cProfile
import pstats

import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.common import BATCH_STEPS, add_env_arguments, add_seed_argument, markdown_header, markdown_row
from sb3_vpg import VPG
from sb3_vpg.buffers import WholeEpisodeMixin

#: The buffer methods that only whole episodes need (``add`` is counted apart: it wraps SB3's own)
BOOKKEEPING = ("discard_consumed", "complete_episodes")


def cumulative_seconds(stats: pstats.Stats, owner: type, name: str) -> float:
    """
    The cumulative time of a method in a profile of ``learn()``.

    :param stats: The profile
    :param owner: The class that defines the method
    :param name: The method's name
    :raises RuntimeError: If ``learn()`` never called it
    """
    code = getattr(owner, name).__code__
    key = (code.co_filename, code.co_firstlineno, name)
    if key not in stats.stats:  # type: ignore[attr-defined]
        raise RuntimeError(f"{owner.__name__}.{name} was not called: the profile does not measure what it claims to")
    return stats.stats[key][3]  # type: ignore[attr-defined]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``carry-over``.

    :param parser: Its parser
    """
    add_env_arguments(parser, ["CartPole-v1", "LunarLander-v3"], n_envs=[1, 8])
    parser.add_argument("--steps", type=int, default=50_000, help="timesteps of learn() (default: %(default)s)")
    add_seed_argument(parser)


def main(args: argparse.Namespace) -> None:
    """
    Profile ``learn()`` on every env and number of envs, printing a table row each.

    :param args: The options of ``carry-over``
    """
    th.set_num_threads(1)
    print(markdown_header(["Env", "n_envs", "n_steps", "learn() s", "whole-episode bookkeeping s", "share"]))
    for env_id in args.envs:
        for n_envs in args.n_envs:
            n_steps = BATCH_STEPS // n_envs
            model = VPG("MlpPolicy", make_vec_env(env_id, n_envs, seed=args.seed), n_steps=n_steps, seed=args.seed)
            profiler = cProfile.Profile()
            profiler.runcall(model.learn, args.steps)
            stats = pstats.Stats(profiler)
            total = stats.total_tt  # type: ignore[attr-defined]
            bookkeeping = sum(cumulative_seconds(stats, WholeEpisodeMixin, name) for name in BOOKKEEPING)
            own_add = cumulative_seconds(stats, WholeEpisodeMixin, "add") - cumulative_seconds(stats, RolloutBuffer, "add")
            bookkeeping += own_add
            cells = [env_id, str(n_envs), str(n_steps), f"{total:.2f}", f"{bookkeeping:.3f}", f"{bookkeeping / total:.1%}"]
            print(markdown_row(cells), flush=True)
