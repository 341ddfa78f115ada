"""
Every committed report made from committed runs, rebuilt from them in one command: ``python -m benchmarks reports``.

Each report is its subcommand with ``--report-only``, the options it was made with, and ``--out`` its folder of
``--results``: the runs come from the folder's ``runs/``, else from its ``runs.tar.xz`` (a clone has only the archive).
The other results (throughput, update cost, variance, Pong) are measurements, not runs: their tables are written as
they are measured.
"""

import argparse

from benchmarks import cli

#: The MuJoCo envs of both MuJoCo reports
MUJOCO_ENVS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Swimmer-v5", "InvertedDoublePendulum-v5", "Ant-v5")
#: The reports, by their folder in ``benchmarks/results``: the subcommand and the options they were made with
REPORTS: dict[str, list[str]] = {
    "classic-control": ["suite", "--seeds", "5"],
    "lunarlander": [
        "suite",
        "--envs",
        "LunarLander-v3",
        "--budget",
        "1000000",
        "--eval-every",
        "50000",
        "--algorithms",
        "vpg-plain",
        "vpg-best",
        "a2c",
        "ppo",
        "rollout-ceiling",
    ],
    "mujoco": [
        "suite",
        "--envs",
        *MUJOCO_ENVS,
        "--algorithms",
        "vpg-best",
        "vpg-plain",
        "a2c",
        "ppo",
        "--seeds",
        "5",
    ],
    "mujoco-fresh": [
        "suite",
        "--envs",
        *MUJOCO_ENVS,
        "--algorithms",
        "vpg-best",
        "a2c",
        "ppo",
        "--first-seed",
        "100",
        "--seeds",
        "5",
    ],
    "scale-out": ["scale-out"],
    "equal-compute": ["equal-compute"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``reports``.

    :param parser: Its parser
    """
    parser.add_argument("--results", default="benchmarks/results", help="the results folder (default: %(default)s)")
    parser.add_argument("--only", nargs="+", choices=list(REPORTS), default=list(REPORTS), help="default: all")


def main(args: argparse.Namespace) -> None:
    """
    Rebuild each report of ``--only`` in its folder of ``--results``.

    :param args: The options of ``reports``
    """
    for name in args.only:
        print(f"{name}:", flush=True)
        cli.main([*REPORTS[name], "--report-only", "--out", f"{args.results}/{name}"])
