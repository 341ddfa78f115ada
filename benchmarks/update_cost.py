"""
What an update costs as batches and episodes grow: ``python -m benchmarks update-cost``.

- **Time** (``--part time``): VPG on ``--n-envs`` envs of vector observations, one of which plays a single episode of
  ``--long-episode`` steps while the others end theirs every ``--short-episode`` steps (``n_steps`` = the short
  length, so each batch holds the short episodes of one rollout). Every ``train()`` is timed as the long episode ages:
  the median of the updates in the first and in the last tenth of its life, their ratio, and the buffer's memory at
  each end. An update costs O(its batch) when the ratio stays near 1, however old the long episode.
- **Memory** (``--part memory``): the peak memory that one ``train()`` adds on top of a buffer that already holds a
  batch of ``--batch-steps`` steps of 84×84×4 frames (NatureCNN; the batch is filled with random frames through the
  buffer's own ``add``, 8 envs, 128-step episodes), with VPG's default ``chunk_size`` and, for batches up to
  ``--whole-up-to`` steps, in one pass (``chunk_size`` = the batch) for comparison. Each measurement in a fresh process
  (Linux: the peak is ``VmHWM`` after resetting it, minus ``VmRSS`` before ``train()``).

    python -m benchmarks update-cost --out benchmarks/results/update-cost
"""

import argparse
import time
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmarks.common import (
    add_quick_and_out_arguments,
    add_seed_argument,
    formatted_table,
    fresh_process_pool,
    markdown_grid,
    peak_rss_mb,
    report_header,
    reset_peak_rss,
    rss_mb,
    write_csv,
)
from sb3_vpg import VPG

#: The frames of the memory part: Atari's 84×84 after rl-zoo3's wrappers, 4 stacked, as uint8
FRAME_SHAPE = (84, 84, 4)
#: Envs and episode length of the memory part's batches
MEMORY_N_ENVS = 8
MEMORY_EPISODE_STEPS = 128
MIB = 2**20


class FixedLengthEpisodes(gym.Env):
    """
    Episodes of ``length`` steps (the last truncated), random observations of ``shape``, whatever the actions.

    :param length: Steps per episode
    :param shape: The observation's shape (uint8 when it has 3 dimensions: an image)
    :param seed: Seed of the observations
    """

    action_space = spaces.Discrete(2)

    def __init__(self, length: int, shape: tuple[int, ...] = (4,), seed: int = 0):
        self.length = length
        image = len(shape) == 3
        self.observation_space = spaces.Box(0, 255, shape, np.uint8) if image else spaces.Box(-1.0, 1.0, shape, np.float32)
        self.rng = np.random.default_rng(seed)
        self.t = 0

    def _observation(self) -> np.ndarray:
        return (
            self.observation_space.sample()
            if self.observation_space.dtype == np.uint8
            else self.rng.uniform(-1, 1, self.observation_space.shape).astype(np.float32)
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._observation(), 1.0, False, self.t >= self.length, {}


def update_times(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    The time of every ``train()`` while the long episode runs, and the buffer's memory.

    :param args: The options of ``update-cost``
    :return: One row per update: the long episode's age, the batch's steps, the wall-clock and CPU ms of ``train()``
        (the CPU time of this process, which other load on a shared machine disturbs less), the buffer's KiB
    """
    th.set_num_threads(1)
    lengths = [args.long_episode] + [args.short_episode] * (args.n_envs - 1)
    env = DummyVecEnv([partial(FixedLengthEpisodes, length, seed=args.seed + i) for i, length in enumerate(lengths)])
    model = VPG("MlpPolicy", env, n_steps=args.short_episode, seed=args.seed)
    rows: list[dict[str, Any]] = []
    train = model.train

    def timed_train() -> None:
        batch_steps = model.rollout_buffer.size()
        start, start_cpu = time.perf_counter(), time.process_time()
        train()
        rows.append(
            {
                "long_episode_age": model.num_timesteps // args.n_envs,
                "batch_steps": batch_steps,
                "train_ms": 1000 * (time.perf_counter() - start),
                "train_cpu_ms": 1000 * (time.process_time() - start_cpu),
                "buffer_kib": model.rollout_buffer.nbytes / 2**10,
            }
        )

    model.train = timed_train  # type: ignore[method-assign]
    model.learn(args.long_episode * args.n_envs - args.n_envs)  # the long episode's last step is not taken
    return rows


def update_memory(batch_steps: int, chunk_size: int | None, seed: int) -> dict[str, Any]:
    """
    One ``train()`` on a buffer filled with ``batch_steps`` steps of frames; meant to run in a fresh process.

    :param batch_steps: Steps in the batch, a multiple of ``MEMORY_N_ENVS × MEMORY_EPISODE_STEPS``
    :param chunk_size: VPG's ``chunk_size`` (``None``: its default)
    :param seed: Seed of the model and the frames
    :return: The settings (how the update ran), the chunk size used, the MiB resident before ``train()``, the peak it
        added, the buffer's MiB and the seconds it took
    """
    th.set_num_threads(1)
    env = DummyVecEnv([lambda: FixedLengthEpisodes(MEMORY_EPISODE_STEPS, FRAME_SHAPE, seed)] * MEMORY_N_ENVS)
    model = VPG("CnnPolicy", env, n_steps=batch_steps // MEMORY_N_ENVS, chunk_size=chunk_size, seed=seed)
    model.set_logger(configure(None, []))
    buffer = model.rollout_buffer
    rng = np.random.default_rng(seed)
    frame_shape = model.observation_space.shape
    assert frame_shape is not None
    frames = rng.integers(0, 256, size=(64, MEMORY_N_ENVS, *frame_shape)).astype(np.uint8)
    for step in range(batch_steps // MEMORY_N_ENVS):
        t = step % MEMORY_EPISODE_STEPS
        starts, dones = np.full(MEMORY_N_ENVS, t == 0), np.full(MEMORY_N_ENVS, t == MEMORY_EPISODE_STEPS - 1)
        buffer.add(frames[step % len(frames)], rng.integers(0, 2, MEMORY_N_ENVS), np.ones(MEMORY_N_ENVS), starts, done=dones)
    assert buffer.size() == batch_steps
    before = rss_mb()
    reset_peak_rss()
    start = time.perf_counter()
    model.train()
    seconds = time.perf_counter() - start
    return {
        "batch_steps": batch_steps,
        "update": "in chunks (default)" if chunk_size is None else "one pass",
        "chunk_size": model.chunk_size,
        "rss_before_mb": before,
        "update_peak_mb": peak_rss_mb() - before,
        "buffer_mb": buffer.nbytes / MIB,
        "train_seconds": seconds,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``update-cost``.

    :param parser: Its parser
    """
    parser.add_argument("--part", choices=["time", "memory", "both"], default="both", help="what to measure (default: both)")
    parser.add_argument("--n-envs", type=int, default=8, help="envs of the time part (default: %(default)s)")
    parser.add_argument("--long-episode", type=int, default=20_000, help="the long episode's steps (default: %(default)s)")
    parser.add_argument("--short-episode", type=int, default=20, help="the other episodes' steps (default: %(default)s)")
    parser.add_argument(
        "--batch-steps",
        type=int,
        nargs="+",
        default=[1024, 8192, 32768],
        help="batches of the memory part (default: %(default)s)",
    )
    parser.add_argument(
        "--whole-up-to", type=int, default=8192, help="largest batch also updated in one pass (default: %(default)s)"
    )
    add_seed_argument(parser)
    add_quick_and_out_arguments(parser, "a 2,000-step long episode, batches of 1,024 and 2,048 frames", "update-cost")


def time_table(rows: list[dict[str, Any]], long_episode: int) -> tuple[str, float]:
    """
    The time part's table: the median ``train()`` in the first and the last tenth of the long episode's life, in CPU
    time (the ratio) and in wall-clock time.

    :param rows: :func:`update_times`' rows
    :param long_episode: The long episode's length
    :return: The markdown table, and the late/early ratio
    """
    early = [row for row in rows if row["long_episode_age"] <= long_episode / 10]
    late = [row for row in rows if row["long_episode_age"] > long_episode * 9 / 10]
    cells = []
    for name, group in (("first tenth", early), ("last tenth", late)):
        ages = f"{group[0]['long_episode_age']}–{group[-1]['long_episode_age']}"
        cpu_ms, wall_ms, batch = (
            float(np.median([row[key] for row in group])) for key in ("train_cpu_ms", "train_ms", "batch_steps")
        )
        cells.append(
            [name, ages, str(len(group)), f"{batch:.0f}", f"{cpu_ms:.2f}", f"{wall_ms:.2f}", f"{group[-1]['buffer_kib']:.0f}"]
        )
    ratio = float(np.median([row["train_cpu_ms"] for row in late]) / np.median([row["train_cpu_ms"] for row in early]))
    columns = [
        "Long episode",
        "Its age (steps)",
        "Updates",
        "Median batch (steps)",
        "Median train() CPU ms",
        "Wall ms",
        "Buffer KiB",
    ]
    return markdown_grid(columns, cells), ratio


#: The memory table's columns, from the rows of :func:`update_memory`
MEMORY_COLUMNS = (
    ("Batch (steps)", "{batch_steps}"),
    ("Update", "{update}"),
    ("Chunk (steps)", "{chunk_size}"),
    ("Peak added by train() MiB", "{update_peak_mb:.0f}"),
    ("Buffer MiB", "{buffer_mb:.0f}"),
    ("train() s", "{train_seconds:.1f}"),
)


def main(args: argparse.Namespace) -> None:
    """
    Measure, print, and write each part's report with its CSV: ``update-time.md`` and ``update_times.csv``,
    ``update-memory.md`` and ``update_memory.csv`` (a part not run keeps its earlier files).

    :param args: The options of ``update-cost``
    """
    if args.quick:
        args.long_episode, args.batch_steps, args.whole_up_to = 2_000, [1024, 2048], 1024
    args.out.mkdir(parents=True, exist_ok=True)
    header = report_header(
        "sb3-vpg: the cost of an update", args.command_line, "one measurement at a time, one torch thread, on cpu", []
    )
    if args.part in ("time", "both"):
        rows = update_times(args)
        write_csv(args.out / "update_times.csv", rows, rows[0].keys())
        table, ratio = time_table(rows, args.long_episode)
        section = (
            f"## train() time as one episode ages\n\n{args.n_envs} envs: one plays a {args.long_episode}-step episode, "
            f"the others end theirs every {args.short_episode} steps (n_steps = {args.short_episode}).\n\n{table}\n"
            f"Last tenth / first tenth (CPU time): {ratio:.2f}\n"
        )
        (args.out / "update-time.md").write_text(header + "\n" + section)
        print(section, flush=True)
    if args.part in ("memory", "both"):
        jobs = [(steps, None) for steps in args.batch_steps]
        jobs += [(steps, steps) for steps in args.batch_steps if steps <= args.whole_up_to]
        rows = []
        with fresh_process_pool(1) as pool:
            for steps, chunk_size in jobs:
                rows.append(pool.submit(update_memory, steps, chunk_size, args.seed).result())
                print(f"{steps} steps, chunk {rows[-1]['chunk_size']}: +{rows[-1]['update_peak_mb']:.0f} MiB", flush=True)
        write_csv(args.out / "update_memory.csv", rows, rows[0].keys())
        chunked = {row["batch_steps"]: row["update_peak_mb"] for row in rows if row["update"] != "one pass"}
        ratios = ", ".join(
            f"{steps} / {args.batch_steps[0]}: {chunked[steps] / chunked[args.batch_steps[0]]:.2f}" for steps in chunked
        )
        table = formatted_table(rows, MEMORY_COLUMNS)
        section = f"## Peak memory of one update, frames of {FRAME_SHAPE}\n\n{table}\nIn chunks, {ratios}\n"
        (args.out / "update-memory.md").write_text(header + "\n" + section)
        print(section, flush=True)
