"""
Throughput and memory of VPG against the rollout-collection ceiling and A2C on the same envs:
``python -m benchmarks throughput [--quick] [options]``. See the docs' Benchmark page.

For every env and number of envs (``make_vec_env`` with ``DummyVecEnv``, the same seed), each of :data:`VARIANTS` is
measured in a fresh process, one process at a time, for the same timesteps; the variants take turns within each
repeat (ceiling, vpg, ..., ceiling, vpg, ...), so that a slow spell of a shared machine falls on all of them, and the
table gives the median over the repeats.
"""

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import A2C
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from benchmarks.common import (
    BATCH_STEPS,
    QuickDefault,
    StepTimer,
    add_env_arguments,
    add_quick_and_out_arguments,
    add_seed_argument,
    formatted_table,
    fresh_process_pool,
    peak_rss_mb,
    report_header,
    step_without_learning,
    write_csv,
)
from sb3_vpg import VPG

#: The default envs, numbers of envs (``DummyVecEnv``) and timesteps per measurement
ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "LunarLander-v3")
N_ENVS = (1, 8)
TIMESTEPS = 30_000
#: ``--quick``: timesteps per measurement, and its one env
QUICK_TIMESTEPS = 1_000
QUICK_ENV = "CartPole-v1"
#: The default device of every model: small MLPs, where the CPU is what matters
DEVICE = "cpu"

#: What VPG should reach, stated in the report: training fps at least this times the rollout-collection ceiling's ...
TARGET_VPG_VS_CEILING = 0.9
#: ... and at least this times A2C's with the same envs ...
TARGET_VPG_VS_A2C = 1.8
#: ... and a peak resident memory at most this times A2C's with the same envs and batch size in steps
TARGET_PEAK_RSS_RATIO = 1.2


@dataclass(frozen=True)
class Job:
    """
    One measurement, in a process of its own.

    :param variant: A key of :data:`VARIANTS`
    :param env_id: The gymnasium id of the env
    :param n_envs: The number of envs in the ``DummyVecEnv``
    :param timesteps: Timesteps to train (or, for the ceiling, to step), over all envs
    :param n_steps: VPG's batch in steps per env, also that of ``a2c-n-steps``
    :param n_episodes: The batch of ``vpg-episodes``, in episodes
    :param seed: The seed of the envs and the model
    :param repeat: Which repeat this is (0, 1, ...)
    :param device: The PyTorch device of the model
    """

    variant: str
    env_id: str
    n_envs: int
    timesteps: int
    n_steps: int
    n_episodes: int
    seed: int
    repeat: int
    device: str = DEVICE


def _vpg_n_steps(job: Job, env: VecEnv) -> BaseAlgorithm:
    """VPG with the job's batch in steps."""
    return VPG("MlpPolicy", env, n_steps=job.n_steps, seed=job.seed, device=job.device)


#: What is measured, in this order within every repeat: the model each builds on the envs. The ceiling steps VPG's
#: envs with its policy, without learning.
VARIANTS: dict[str, Callable[[Job, VecEnv], BaseAlgorithm]] = {
    "ceiling": _vpg_n_steps,
    "vpg": _vpg_n_steps,
    "vpg-episodes": lambda job, env: VPG("MlpPolicy", env, n_episodes=job.n_episodes, seed=job.seed, device=job.device),
    "a2c": lambda job, env: A2C("MlpPolicy", env, seed=job.seed, device=job.device),
    "a2c-n-steps": lambda job, env: A2C("MlpPolicy", env, n_steps=job.n_steps, seed=job.seed, device=job.device),
}

#: The memory comparison: VPG against A2C with the same envs and batch size in steps
MEMORY_VARIANTS = ("vpg", "a2c-n-steps")

#: The time comparison, in and outside the envs' ``step``: VPG against the ceiling
ENV_TIME_VARIANTS = ("ceiling", "vpg")

#: ``throughput_runs.csv``: one row per measurement
RUN_COLUMNS = (
    *(field.name for field in fields(Job)),
    "timesteps_done",
    "seconds",
    "cpu_seconds",
    "env_seconds",
    "fps",
    "cpu_fps",
    "setup_rss_mb",
    "peak_rss_mb",
)
#: ``throughput.csv``: one row per env and number of envs, medians over the repeats
SUMMARY_COLUMNS = (
    "env",
    "n_envs",
    "n_steps",
    "timesteps",
    "repeats",
    "ceiling_fps",
    "vpg_fps",
    "vpg_vs_ceiling",
    "vpg_vs_ceiling_cpu",
    "ceiling_env_step_ms_per_1k",
    "vpg_env_step_ms_per_1k",
    "ceiling_outside_env_ms_per_1k",
    "vpg_outside_env_ms_per_1k",
    "vpg_vs_ceiling_outside_env",
    "vpg_episodes_fps",
    "vpg_episodes_vs_ceiling",
    "a2c_fps",
    "vpg_vs_a2c",
    "vpg_vs_a2c_cpu",
    "a2c_n_steps_fps",
    "vpg_peak_rss_mb",
    "a2c_n_steps_peak_rss_mb",
    "peak_rss_ratio",
    "vpg_rss_above_setup_mb",
    "a2c_n_steps_rss_above_setup_mb",
    "rss_above_setup_ratio",
)
#: The columns of the table of ``throughput.md``
TABLE_COLUMNS = (
    ("Env", "{env}"),
    ("n_envs", "{n_envs}"),
    ("Ceiling fps", "{ceiling_fps:.0f}"),
    ("VPG fps", "{vpg_fps:.0f}"),
    ("VPG / ceiling", "{vpg_vs_ceiling:.2f}"),
    ("VPG / ceiling, CPU time", "{vpg_vs_ceiling_cpu:.2f}"),
    ("env.step ms / 1k steps VPG / ceiling", "{vpg_env_step_ms_per_1k:.1f} / {ceiling_env_step_ms_per_1k:.1f}"),
    ("Outside env.step ms / 1k steps VPG / ceiling", "{vpg_outside_env_ms_per_1k:.1f} / {ceiling_outside_env_ms_per_1k:.1f}"),
    ("Ratio (outside env.step)", "{vpg_vs_ceiling_outside_env:.2f}"),
    ("VPG (n_episodes) fps", "{vpg_episodes_fps:.0f}"),
    ("VPG (n_episodes) / ceiling", "{vpg_episodes_vs_ceiling:.2f}"),
    ("A2C fps", "{a2c_fps:.0f}"),
    ("VPG / A2C", "{vpg_vs_a2c:.2f}"),
    ("VPG / A2C, CPU time", "{vpg_vs_a2c_cpu:.2f}"),
    ("Peak RSS VPG / A2C (same n_steps), MiB", "{vpg_peak_rss_mb:.0f} / {a2c_n_steps_peak_rss_mb:.0f}"),
    ("Ratio", "{peak_rss_ratio:.2f}"),
    ("RSS above setup VPG / A2C (same n_steps), MiB", "{vpg_rss_above_setup_mb:.1f} / {a2c_n_steps_rss_above_setup_mb:.1f}"),
    ("Ratio", "{rss_above_setup_ratio:.2f}"),
)


def measure(job: Job) -> dict[str, Any]:
    """
    Do one measurement; meant to run in a fresh process (:func:`~benchmarks.common.fresh_process_pool`).

    :param job: The measurement
    :return: The job's fields, the timesteps done, the wall-clock and CPU time of ``learn()`` (for the ceiling, of the
        collection loop; the CPU time of this process, which another job on a shared machine disturbs less), the
        ``env_seconds`` of it spent in the envs' ``step`` (:class:`~benchmarks.common.StepTimer`), the rate,
        and memory in MiB: ``setup_rss_mb`` after the imports and the construction of the envs and the model,
        ``peak_rss_mb`` at the end
    """
    th.set_num_threads(1)
    env = StepTimer(make_vec_env(job.env_id, job.n_envs, seed=job.seed, vec_env_cls=DummyVecEnv))
    model = VARIANTS[job.variant](job, env)
    setup_rss_mb = peak_rss_mb()
    start_cpu = time.process_time()
    if job.variant == "ceiling":
        stepped = step_without_learning(model, job.timesteps)
        timesteps, seconds = stepped["timesteps"], stepped["train_seconds"]
    else:
        start = time.perf_counter()
        model.learn(job.timesteps)
        timesteps, seconds = model.num_timesteps, time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu
    return {
        **asdict(job),
        "timesteps_done": timesteps,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "env_seconds": env.env_seconds,
        "fps": timesteps / seconds,
        "cpu_fps": timesteps / cpu_seconds,
        "setup_rss_mb": setup_rss_mb,
        "peak_rss_mb": peak_rss_mb(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``throughput``.

    :param parser: Its parser
    """
    add_quick_and_out_arguments(parser, f"{QUICK_TIMESTEPS} steps, {QUICK_ENV}, 1 repeat", folder="throughput")
    add_env_arguments(parser, QuickDefault(list(ENVS), [QUICK_ENV]), n_envs=N_ENVS)
    parser.add_argument(
        "--steps",
        type=int,
        default=QuickDefault(TIMESTEPS, QUICK_TIMESTEPS),
        help="timesteps per measurement (default: %(default)s)",
    )
    parser.add_argument("--n-steps", type=int, help=f"VPG's and a2c-n-steps' n_steps (default: {BATCH_STEPS} // n_envs)")
    parser.add_argument("--n-episodes", type=int, default=8, help="vpg-episodes' n_episodes (default: %(default)s)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=QuickDefault(3, 1),
        help="measurements of each variant, interleaved (default: %(default)s)",
    )
    add_seed_argument(parser, of="every env and model")
    parser.add_argument("--device", default=DEVICE, help="PyTorch device of every model (default: %(default)s)")


def jobs(args: argparse.Namespace) -> list[Job]:
    """
    Every measurement, env by env and number of envs by number of envs, the variants taking turns in each repeat.

    :param args: The options of ``throughput``
    """
    return [
        Job(
            variant,
            env_id,
            n_envs,
            args.steps,
            args.n_steps or BATCH_STEPS // n_envs,
            args.n_episodes,
            args.seed,
            repeat,
            args.device,
        )
        for env_id in args.envs
        for n_envs in args.n_envs
        for repeat in range(args.repeats)
        for variant in VARIANTS
    ]


def _median(results: list[dict[str, Any]], variant: str, value: Callable[[dict[str, Any]], float]) -> float:
    """
    The median of ``value`` over the measurements of ``variant`` in ``results``.

    :param results: Measurements, as :func:`measure` returns them
    :param variant: A key of :data:`VARIANTS`
    :param value: What to take the median of, from one measurement
    """
    return float(np.median([value(result) for result in results if result["variant"] == variant]))


def _env_step_ms_per_1k(result: dict[str, Any]) -> float:
    """The milliseconds per 1000 timesteps that the measurement ``result`` spent in the envs' ``step``."""
    return 1000 * result["env_seconds"] / (result["timesteps_done"] / 1000)


def _outside_env_ms_per_1k(result: dict[str, Any]) -> float:
    """The milliseconds per 1000 timesteps that the measurement ``result`` spent outside the envs' ``step``."""
    return 1000 * (result["seconds"] - result["env_seconds"]) / (result["timesteps_done"] / 1000)


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    One row per env and number of envs: the median over the repeats of each variant's fps and memory, of VPG's and the
    ceiling's milliseconds per 1000 timesteps in and outside the envs' ``step``, and the ratios of these medians.

    :param results: The measurements, as :func:`measure` returns them
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["env_id"], result["n_envs"]), []).append(result)
    rows = []
    for (env_id, n_envs), group in groups.items():
        fps = {variant: _median(group, variant, lambda result: result["fps"]) for variant in VARIANTS}
        cpu_fps = {variant: _median(group, variant, lambda result: result["cpu_fps"]) for variant in VARIANTS}
        env_step = {variant: _median(group, variant, _env_step_ms_per_1k) for variant in ENV_TIME_VARIANTS}
        outside = {variant: _median(group, variant, _outside_env_ms_per_1k) for variant in ENV_TIME_VARIANTS}
        peak = {variant: _median(group, variant, lambda result: result["peak_rss_mb"]) for variant in MEMORY_VARIANTS}
        above = {
            variant: _median(group, variant, lambda result: result["peak_rss_mb"] - result["setup_rss_mb"])
            for variant in MEMORY_VARIANTS
        }
        rows.append(
            {
                "env": env_id,
                "n_envs": n_envs,
                "n_steps": group[0]["n_steps"],
                "timesteps": group[0]["timesteps"],
                "repeats": sum(result["variant"] == "ceiling" for result in group),
                "ceiling_fps": fps["ceiling"],
                "vpg_fps": fps["vpg"],
                "vpg_vs_ceiling": fps["vpg"] / fps["ceiling"],
                "vpg_vs_ceiling_cpu": cpu_fps["vpg"] / cpu_fps["ceiling"],
                "ceiling_env_step_ms_per_1k": env_step["ceiling"],
                "vpg_env_step_ms_per_1k": env_step["vpg"],
                "ceiling_outside_env_ms_per_1k": outside["ceiling"],
                "vpg_outside_env_ms_per_1k": outside["vpg"],
                "vpg_vs_ceiling_outside_env": outside["vpg"] / outside["ceiling"],
                "vpg_episodes_fps": fps["vpg-episodes"],
                "vpg_episodes_vs_ceiling": fps["vpg-episodes"] / fps["ceiling"],
                "a2c_fps": fps["a2c"],
                "vpg_vs_a2c": fps["vpg"] / fps["a2c"],
                "vpg_vs_a2c_cpu": cpu_fps["vpg"] / cpu_fps["a2c"],
                "a2c_n_steps_fps": fps["a2c-n-steps"],
                "vpg_peak_rss_mb": peak["vpg"],
                "a2c_n_steps_peak_rss_mb": peak["a2c-n-steps"],
                "peak_rss_ratio": peak["vpg"] / peak["a2c-n-steps"],
                "vpg_rss_above_setup_mb": above["vpg"],
                "a2c_n_steps_rss_above_setup_mb": above["a2c-n-steps"],
                "rss_above_setup_ratio": above["vpg"] / above["a2c-n-steps"],
            }
        )
    return rows


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """
    The table of ``throughput.md``, one row per env and number of envs.

    :param summary: The rows of :func:`summary_rows`
    """
    return formatted_table(summary, TABLE_COLUMNS)


def header(args: argparse.Namespace) -> str:
    """
    The top of ``throughput.md``: how and where the numbers were made, and what VPG should reach.

    :param args: The options of ``throughput``, with the command line that gave them
    """
    n_steps = args.n_steps or f"{BATCH_STEPS} // n_envs"
    details = [
        f"{args.steps} timesteps per measurement, seed {args.seed}, median of {args.repeats} interleaved repeats; "
        f"VPG and the ceiling with n_steps = {n_steps}, VPG (n_episodes) with n_episodes = {args.n_episodes}, "
        "A2C with SB3's defaults (n_steps = 5), A2C (same n_steps) with VPG's n_steps",
        "env.step / outside env.step: milliseconds per 1,000 timesteps spent in the envs' `step` and in everything "
        "else (policy, storage, learning); a learning policy visits other states, which can make the env itself slower "
        "than under the ceiling, so Ratio (outside env.step) is what VPG costs apart from the env",
        "CPU time: the ratios of the rates in each measurement's own CPU time, which the other jobs of a shared machine "
        "disturb much less than the wall-clock time of the other columns",
        f"Targets: VPG / ceiling ≥ {TARGET_VPG_VS_CEILING}, VPG / A2C ≥ {TARGET_VPG_VS_A2C}, "
        f"peak RSS ratio ≤ {TARGET_PEAK_RSS_RATIO}",
    ]
    how = f"one measurement at a time, each in a fresh process, one torch thread, on {args.device}"
    return report_header("sb3-vpg throughput and memory", args.command_line, how, details)


def main(args: argparse.Namespace) -> None:
    """
    Measure, print the table, and write ``throughput.md``, ``throughput.csv`` and ``throughput_runs.csv``.

    :param args: The options of ``throughput``, with the command line that gave them
    """
    todo = jobs(args)
    print(f"{len(todo)} measurements, one at a time; output in {args.out}", flush=True)
    results = []
    with fresh_process_pool(1) as pool:
        for done, job in enumerate(todo, start=1):
            result = pool.submit(measure, job).result()
            results.append(result)
            print(
                f"[{done}/{len(todo)}] {job.variant} {job.env_id} n_envs={job.n_envs} repeat {job.repeat}: "
                f"{result['fps']:.0f} fps, peak {result['peak_rss_mb']:.0f} MiB",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "throughput_runs.csv", results, RUN_COLUMNS)
    summary = summary_rows(results)
    write_csv(args.out / "throughput.csv", summary, SUMMARY_COLUMNS)
    table = markdown_table(summary)
    (args.out / "throughput.md").write_text(header(args) + "\n" + table)
    print(table + f"Wrote throughput.md, throughput.csv and throughput_runs.csv in {args.out}")
