"""
VPG on Pong with ``CnnPolicy`` at its defaults against PPO with rl-zoo3's Atari hyperparameters, in the same run:
``python -m benchmarks pong``. Both read their hyperparameters through rl-zoo3 (``atari`` in the package's ``vpg.yml``
and in rl-zoo3's ``ppo.yml``: AtariWrapper, 4 stacked frames, 8 envs), each trains for ``--timesteps`` in a fresh
process, and the table gives the training fps, the peak resident memory and the rollout buffer's share of it (its
largest size while training: ``EpisodeRolloutBuffer.nbytes`` for VPG, the arrays of SB3's ``RolloutBuffer`` for PPO).
Needs ale-py (``pip install ale-py``).

    python -m benchmarks pong --timesteps 100000 --out benchmarks/results/pong
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.common import (
    add_quick_and_out_arguments,
    add_seed_argument,
    formatted_table,
    fresh_process_pool,
    peak_rss_mb,
    report_header,
    write_csv,
)
from benchmarks.runs import experiment_manager

ENV_ID = "PongNoFrameskip-v4"
#: The algorithms compared (keys of the suite's algorithms: the package's vpg.yml, and rl-zoo3's ppo.yml)
ALGORITHMS = ("vpg-best", "ppo")
MIB = 2**20


def buffer_nbytes(buffer: BaseBuffer) -> int:
    """The memory of a rollout buffer's arrays (``nbytes`` where the buffer counts it itself, as VPG's does)."""
    counted = getattr(buffer, "nbytes", None)
    if counted is not None:
        return int(counted)
    arrays = [value for value in vars(buffer).values() if isinstance(value, np.ndarray)]
    arrays += [array for value in vars(buffer).values() if isinstance(value, dict) for array in value.values()]
    return sum(array.nbytes for array in arrays if isinstance(array, np.ndarray))


class LargestBuffer(BaseCallback):
    """Records the rollout buffer's largest size, at the end of every rollout (when it holds the most)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def _on_rollout_end(self) -> None:
        self.largest = max(self.largest, buffer_nbytes(self.model.rollout_buffer))  # type: ignore[attr-defined]

    def _on_step(self) -> bool:
        return True


def measure(algorithm: str, timesteps: int, seed: int) -> dict[str, Any]:
    """
    Train one algorithm on Pong; meant to run in a fresh process (its peak memory is its own).

    :param algorithm: One of :data:`ALGORITHMS`
    :param timesteps: Training timesteps
    :param seed: Seed of the envs and the model
    :return: What was measured
    """
    th.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        manager = experiment_manager(algorithm, ENV_ID, seed, timesteps, folder, "cpu")
        experiment = manager.setup_experiment()
        assert experiment is not None
        model = experiment[0]
        largest = LargestBuffer()
        start = time.perf_counter()
        model.learn(timesteps, callback=largest)
        seconds = time.perf_counter() - start
    episodes = list(model.ep_info_buffer or [])
    peak = peak_rss_mb()
    return {
        "algorithm": algorithm,
        "timesteps": model.num_timesteps,
        "seconds": seconds,
        "fps": model.num_timesteps / seconds,
        "peak_rss_mb": peak,
        "buffer_mb": largest.largest / MIB,
        "buffer_share": largest.largest / MIB / peak,
        "mean_episode_length": float(np.mean([episode["l"] for episode in episodes])) if episodes else None,
        "mean_episode_return": float(np.mean([episode["r"] for episode in episodes])) if episodes else None,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``pong``.

    :param parser: Its parser
    """
    parser.add_argument("--timesteps", type=int, default=100_000, help="training timesteps of each (default: %(default)s)")
    add_seed_argument(parser)
    add_quick_and_out_arguments(parser, "4,000 timesteps each", "pong")


#: The table's columns, from the rows of :func:`measure`
COLUMNS = (
    ("Algorithm", "{algorithm}"),
    ("Timesteps", "{timesteps}"),
    ("Training fps", "{fps:.0f}"),
    ("Peak RSS MiB", "{peak_rss_mb:.0f}"),
    ("Rollout buffer MiB (largest)", "{buffer_mb:.0f}"),
    ("Buffer share", "{buffer_share:.0%}"),
)


def main(args: argparse.Namespace) -> None:
    """
    Measure both algorithms (a stored result is reused when made with the same timesteps and seed), print the table
    and write ``pong.md``, ``pong.csv`` and one JSON per algorithm.

    :param args: The options of ``pong``
    """
    timesteps = 4_000 if args.quick else args.timesteps
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with fresh_process_pool(1) as pool:
        for algorithm in ALGORITHMS:
            path = Path(args.out) / f"{algorithm}.json"
            stored = json.loads(path.read_text()) if path.is_file() else None
            if stored is None or (stored["timesteps_asked"], stored["seed"]) != (timesteps, args.seed):
                stored = {**pool.submit(measure, algorithm, timesteps, args.seed).result(), "timesteps_asked": timesteps}
                stored["seed"] = args.seed
                path.write_text(json.dumps(stored, indent=1))
            rows.append(stored)
            print(f"{algorithm}: {stored['fps']:.0f} fps, peak {stored['peak_rss_mb']:.0f} MiB", flush=True)
    write_csv(args.out / "pong.csv", rows, rows[0].keys())
    header = report_header(
        "sb3-vpg on Pong: memory and speed against PPO",
        args.command_line,
        "one run at a time, each in a fresh process, one torch thread, on cpu",
        [f"{ENV_ID}, {timesteps} timesteps each, seed {args.seed}"],
    )
    table = formatted_table(rows, COLUMNS)
    (args.out / "pong.md").write_text(header + "\n" + table)
    print(table)
