"""
What carrying unfinished episodes over costs: the share of ``learn()``'s time spent in the buffer's whole-episode
bookkeeping, measured with cProfile on VPG with the batch in steps (so that episodes are cut at every rollout's end).

The bookkeeping is what SB3's own rollout buffer does not do: ``discard_consumed`` (moving the running episodes to the
front of the buffer), ``complete_episodes`` (selecting the complete ones and flattening them) and the part of ``add``
outside SB3's own ``add`` (episode lengths, ``dones``, growing the buffer with ``_resize``). cProfile slows down every
Python call, so the shares are upper bounds of what they are without it.

    python benchmarks/carry_over_cost.py --envs CartPole-v1 LunarLander-v3 --n-envs 1 8 --steps 50000
"""

import argparse
import cProfile
import pstats

import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env

from sb3_vpg import VPG
from sb3_vpg.buffers import WholeEpisodeMixin

#: The buffer methods that only whole episodes need (``add`` is counted apart: it wraps SB3's own)
BOOKKEEPING = ("discard_consumed", "complete_episodes")


def cumulative_seconds(stats: pstats.Stats, owner: type, name: str) -> float:
    """The cumulative time of the method ``name`` defined by ``owner``, which ``learn()`` must have called."""
    code = getattr(owner, name).__code__
    key = (code.co_filename, code.co_firstlineno, name)
    if key not in stats.stats:  # type: ignore[attr-defined]
        raise RuntimeError(f"{owner.__name__}.{name} was not called: the profile does not measure what it claims to")
    return stats.stats[key][3]  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "LunarLander-v3"])
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)

    print("| Env | n_envs | n_steps | learn() s | whole-episode bookkeeping s | share |")
    print("|---|---|---|---|---|---|")
    for env_id in args.envs:
        for n_envs in args.n_envs:
            n_steps = 2048 // n_envs
            model = VPG("MlpPolicy", make_vec_env(env_id, n_envs, seed=args.seed), n_steps=n_steps, seed=args.seed)
            profiler = cProfile.Profile()
            profiler.runcall(model.learn, args.steps)
            stats = pstats.Stats(profiler)
            total = stats.total_tt  # type: ignore[attr-defined]
            bookkeeping = sum(cumulative_seconds(stats, WholeEpisodeMixin, name) for name in BOOKKEEPING)
            own_add = cumulative_seconds(stats, WholeEpisodeMixin, "add") - cumulative_seconds(stats, RolloutBuffer, "add")
            bookkeeping += own_add
            row = f"| {env_id} | {n_envs} | {n_steps} | {total:.2f} | {bookkeeping:.3f} | {bookkeeping / total:.1%} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
