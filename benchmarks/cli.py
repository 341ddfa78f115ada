"""
The one command of the harness: ``python -m benchmarks <subcommand> [options]``, from the repository root.

Each subcommand is a module of this package, named as the subcommand with ``_`` for ``-``, with an
``add_arguments(parser)`` and a ``main(args)``; only the module of the subcommand given is imported, so that one whose
dependencies are missing does not stop the others.
"""

import argparse
import importlib
import shlex
import sys

from benchmarks.common import COMMAND, resolve_quick_defaults

#: The subcommands, in ``--help``'s order, and what each does
SUBCOMMANDS: dict[str, str] = {
    "suite": "learning curves of VPG (plain and best), rl-zoo3's A2C and PPO and the rollout-collection ceiling",
    "throughput": "training fps and peak memory of VPG against the ceiling and A2C, same envs",
    "variance": "the variance of the gradient estimate of each of VPG's estimators",
    "value-fitting": "explained variance of V(s) with and without n_value_steps",
    "trial": "one VPG run with hyperparameters from the command line, evaluated as it trains",
    "defaults": "plain Eq. (4) on CartPole-v1 over learning rates and episodes per update",
    "tensorboard": "a screenshot of TensorBoard showing a VPG run's scalars",
    "update-cost": "train() time as an episode ages, and the peak memory of an update of 1k to 32k frames",
    "pong": "VPG on Pong with CnnPolicy against PPO with rl-zoo3's Atari settings: fps, memory, the buffer's share",
    "scale-out": "data-parallel VPG on 1 and 2 ranks (torchrun): learning curves per sample and per second, speed",
    "equal-compute": "VPG, A2C and PPO (rl-zoo3's entries and SB3's defaults) given the same CPU-minutes per run",
    "reports": "every report made from committed runs (suite, scale-out, equal-compute), rebuilt from them",
}


def build_parser(subcommand: str | None) -> argparse.ArgumentParser:
    """
    The command's parser, with the options of one subcommand.

    :param subcommand: The subcommand whose options to add (its module is imported); the others only have their name
        and summary. ``None``: none
    """
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="The measurements behind the docs' results: one subcommand each."
    )
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name, summary in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(
            name, help=summary, description=summary, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        if name == subcommand:
            module = importlib.import_module(f"benchmarks.{name.replace('-', '_')}")
            subparser.description = module.__doc__
            module.add_arguments(subparser)
            subparser.set_defaults(main=module.main)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """
    Parse the command line: the subcommand, then its options, with those that depend on ``--quick`` filled in.

    :param argv: The command's arguments, the subcommand first
    :return: The options, with ``subcommand``, ``main`` (the subcommand's) and ``command_line`` (the whole command)
    """
    subcommand = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(subcommand).parse_args(argv)
    args.command_line = f"{COMMAND} {shlex.join(argv)}"
    return resolve_quick_defaults(args)


def main(argv: list[str] | None = None) -> None:
    """
    Run a subcommand.

    :param argv: The command's arguments, the subcommand first (default: ``sys.argv[1:]``)
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.main(args)
