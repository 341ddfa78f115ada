"""
How well the value head is fitted with and without ``n_value_steps``: the explained variance of V(s) on the last
batch after training VPG (reward-to-go, learned baseline, normalised advantages) on CartPole-v1.

    python -m benchmarks value-fitting --n-value-steps 0 20 80 --timesteps 50000 --seed 0
"""

import argparse

import torch as th

from benchmarks.common import VALUE_BASELINE, add_seed_argument, markdown_header, markdown_row
from sb3_vpg import VPG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``value-fitting``.

    :param parser: Its parser
    """
    parser.add_argument(
        "--n-value-steps", type=int, nargs="+", default=[0, 20, 80], help="values of n_value_steps (default: %(default)s)"
    )
    parser.add_argument("--timesteps", type=int, default=50_000, help="training timesteps per run (default: %(default)s)")
    add_seed_argument(parser)


def main(args: argparse.Namespace) -> None:
    """
    Train one run per value of ``n_value_steps`` and print a table row with what its last update logged.

    :param args: The options of ``value-fitting``
    """
    th.set_num_threads(1)
    print(markdown_header(["n_value_steps", "explained variance", "value loss"]))
    for n_value_steps in args.n_value_steps:
        model = VPG("MlpPolicy", "CartPole-v1", seed=args.seed, n_value_steps=n_value_steps, **VALUE_BASELINE)
        logged = model.learn(args.timesteps).logger.name_to_value
        cells = [str(n_value_steps), f"{logged['train/explained_variance']:.3f}", f"{logged['train/value_loss']:.0f}"]
        print(markdown_row(cells), flush=True)
