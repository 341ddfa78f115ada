"""
Equal compute: ``python -m benchmarks equal-compute [--quick] [options]``.

Every algorithm gets the same CPU budget per run (15 CPU-minutes by default: about VPG's 1M steps on MuJoCo), measured
as the run's own process time (the envs included, the evaluations left out), on the same machine, the runs of the
different algorithms interleaved (seed by seed, env by env) so that the machine's noise falls on all alike, two at a
time. The algorithms: VPG with its ``vpg.yml`` entry, rl-zoo3's A2C and PPO entries (their -v4 entries on the -v5
envs), and A2C and PPO at Stable-Baselines3's defaults (rl-zoo3's ``default`` entry: what a user tries first).

Each run evaluates the deterministic policy (10 episodes) before training, after every ``--eval-every`` CPU-seconds of
training, and at the end, and stores, for each evaluation, its checkpoint, the training CPU-seconds, the timesteps,
the wall-clock and every episode's return and length: as a JSON result, and in rl-zoo3's own format (``evaluations.npz``: its
``timesteps``, ``results`` and ``ep_lengths``, with ``cpu_seconds`` beside them), beside rl-zoo3's monitor file of the
training episodes. Runs without a result in ``--out`` are run; the results and logs are then packed into
``runs.tar.xz`` (``--report-only`` unpacks it when the folder is gone). The report: per env and algorithm, the best
evaluation within 5 and within the whole budget of CPU-minutes, per seed.
"""

import argparse
import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from benchmarks.common import (
    EVAL_EPISODES,
    EVAL_SEED_OFFSET,
    QuickDefault,
    add_quick_and_out_arguments,
    fresh_process_pool,
    machine_description,
    markdown_grid,
    package_versions,
    report_header,
)
from benchmarks.runs import RUNS_ARCHIVE, RUNS_FOLDER, experiment_manager, pack_runs, restore_runs

#: The algorithms (keys of :data:`benchmarks.runs.ALGORITHMS`), in table order
ALGORITHMS = ["vpg-best", "a2c", "ppo", "a2c-default", "ppo-default"]
ENVS = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"]
#: Seeds that no tuning used (the entries were chosen on seed 0; the suite reports seeds 0-4, trials used 5-9)
SEEDS = [100, 101, 102, 103, 104]
#: Timesteps no run reaches within its CPU budget: the budget stops it
NO_STEP_LIMIT = 100_000_000


@dataclass(frozen=True)
class ComputeRun:
    """
    :param algorithm: A key of :data:`benchmarks.runs.ALGORITHMS`
    :param env_id: The gymnasium id
    :param seed: The seed of the envs and the model
    :param cpu_budget: Training CPU-seconds (the run's process time, evaluations left out)
    :param eval_every: Training CPU-seconds between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    """

    algorithm: str
    env_id: str
    seed: int
    cpu_budget: float
    eval_every: float
    n_eval_episodes: int

    @property
    def folder(self) -> str:
        return f"{RUNS_FOLDER}/{self.env_id}/{self.algorithm}/seed{self.seed}"


class CpuBudget(BaseCallback):
    """
    Stops training once its process time, less the evaluations', reaches ``budget``; evaluates the deterministic policy
    before training and at each checkpoint, the first step after every ``eval_every`` CPU-seconds of training (the
    budget's end included), timing each evaluation so that it is left out of the training CPU time.

    :param eval_env: The evaluation env (wrapped as the training env; its VecNormalize statistics copied before each)
    :param budget: Training CPU-seconds
    :param eval_every: Training CPU-seconds between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    """

    def __init__(self, eval_env: VecEnv, budget: float, eval_every: float, n_eval_episodes: int) -> None:
        super().__init__()
        self.eval_env, self.budget, self.eval_every, self.n_eval_episodes = eval_env, budget, eval_every, n_eval_episodes
        self.evaluations: list[dict[str, Any]] = []
        self.eval_cpu = 0.0
        self.start_cpu = self.start_wall = 0.0

    def training_cpu(self) -> float:
        return time.process_time() - self.start_cpu - self.eval_cpu

    def _on_training_start(self) -> None:
        self.start_cpu, self.start_wall = time.process_time(), time.perf_counter()
        self._evaluate(0)

    def _on_step(self) -> bool:
        # Checkpoint k is the first step after k × eval_every training CPU-seconds (a step or an update late).
        used = self.training_cpu()
        if used >= min((self.evaluations[-1]["checkpoint"] + 1) * self.eval_every, self.budget):
            last = math.ceil(self.budget / self.eval_every)
            self._evaluate(last if used >= self.budget else math.floor(used / self.eval_every))
        return used < self.budget

    def _evaluate(self, checkpoint: int) -> None:
        cpu_seconds, started = self.training_cpu(), time.process_time()
        sync_envs_normalization(self.training_env, self.eval_env)
        returns, lengths = evaluate_episodes(self.model, self.eval_env, self.n_eval_episodes)
        self.evaluations.append(
            dict(
                checkpoint=checkpoint,
                cpu_seconds=cpu_seconds,
                timesteps=self.num_timesteps,
                wall_seconds=time.perf_counter() - self.start_wall,
                returns=returns,
                lengths=lengths,
            )
        )
        self.eval_cpu += time.process_time() - started


def evaluate_episodes(model: Any, env: VecEnv, n_episodes: int) -> tuple[list[float], list[int]]:
    """Every episode's return and length of the model's deterministic policy (SB3's ``evaluate_policy``)."""
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    assert isinstance(returns, list) and isinstance(lengths, list)
    return [float(value) for value in returns], [int(value) for value in lengths]


def execute(run: ComputeRun, out: Path) -> dict[str, Any]:
    """One run, in a process of its own: train until the CPU budget, store the result and rl-zoo3's files."""
    th.set_num_threads(1)
    folder = out / run.folder
    folder.mkdir(parents=True, exist_ok=True)
    with (
        (folder / "run.log").open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        tempfile.TemporaryDirectory() as zoo_folder,
    ):
        manager = experiment_manager(run.algorithm, run.env_id, run.seed, NO_STEP_LIMIT, zoo_folder, "cpu")
        experiment = manager.setup_experiment()
        assert experiment is not None
        model = experiment[0]
        eval_env = manager.create_envs(1, eval_env=True)
        eval_env.seed(run.seed + EVAL_SEED_OFFSET)
        budget = CpuBudget(eval_env, run.cpu_budget, run.eval_every, run.n_eval_episodes)
        model.learn(NO_STEP_LIMIT, callback=[*manager.callbacks, budget])
        for monitor in Path(manager.save_path).glob("*.monitor.csv"):
            (folder / monitor.name).write_bytes(monitor.read_bytes())
    evaluations = budget.evaluations
    np.savez(
        folder / "evaluations.npz",
        timesteps=np.array([evaluation["timesteps"] for evaluation in evaluations]),
        results=np.array([evaluation["returns"] for evaluation in evaluations]),
        ep_lengths=np.array([evaluation["lengths"] for evaluation in evaluations]),
        cpu_seconds=np.array([evaluation["cpu_seconds"] for evaluation in evaluations]),
    )
    result = {
        "run": asdict(run),
        "evaluations": evaluations,
        "timesteps": model.num_timesteps,
        "machine": machine_description(),
        "versions": package_versions(),
    }
    partial = folder / "result.json.partial"
    partial.write_text(json.dumps(result, indent=1))
    os.replace(partial, folder / "result.json")  # a result file is always whole: an interrupted run leaves none
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_quick_and_out_arguments(parser, "Hopper-v5, VPG and PPO's defaults, 20 CPU-seconds, one seed", "equal-compute")
    parser.add_argument("--envs", nargs="+", default=QuickDefault(ENVS, ["Hopper-v5"]))
    parser.add_argument("--algorithms", nargs="+", default=QuickDefault(ALGORITHMS, ["vpg-best", "ppo-default"]))
    parser.add_argument("--seeds", type=int, nargs="+", default=QuickDefault(SEEDS, SEEDS[:1]))
    parser.add_argument("--cpu-minutes", type=float, default=QuickDefault(15.0, 1 / 3), help="budget per run")
    parser.add_argument("--eval-every", type=float, default=QuickDefault(60.0, 10.0), help="CPU-seconds")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (default: %(default)s)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the stored results")


def best_within(result: dict[str, Any], cpu_seconds: float) -> float:
    """The best mean return of the evaluations at the checkpoints within ``cpu_seconds`` of training CPU time."""
    every = result["run"]["eval_every"]
    inside = [e for e in result["evaluations"] if e["checkpoint"] * every <= cpu_seconds + 1e-6]
    return max(float(np.mean(e["returns"])) for e in inside)


def write_report(results: list[dict[str, Any]], args: argparse.Namespace) -> Path:
    budget = max(result["run"]["cpu_budget"] for result in results)
    rows = []
    for env_id in dict.fromkeys(result["run"]["env_id"] for result in results):
        for algorithm in ALGORITHMS:
            mine = sorted(
                (r for r in results if r["run"]["env_id"] == env_id and r["run"]["algorithm"] == algorithm),
                key=lambda r: r["run"]["seed"],
            )
            if not mine:
                continue
            early = [best_within(result, min(300.0, budget)) for result in mine]
            whole = [best_within(result, budget) for result in mine]
            rows.append(
                [
                    env_id,
                    algorithm,
                    str(len(mine)),
                    ", ".join(f"{value:,.0f}" for value in early),
                    ", ".join(f"{value:,.0f}" for value in whole),
                    ", ".join(f"{result['timesteps'] / 1000:,.0f}k" for result in mine),
                ]
            )
    columns = ["Env", "Algorithm", "Seeds", "Best within 5 CPU-min", f"Best within {budget / 60:g} CPU-min", "Timesteps"]
    header = report_header(
        "Equal compute: the best policy within a CPU budget",
        args.command_line,
        f"{args.workers} runs at a time, interleaved, one thread each",
        [
            f"Results measured on: {'; '.join(sorted({result['machine'] for result in results}))}",
            f"Budget: {budget / 60:g} CPU-minutes of training per run (process time, envs included, evaluations left out)",
            f"{EVAL_EPISODES} deterministic episodes per evaluation; values per seed, in seed order",
        ],
    )
    report = args.out / "equal_compute.md"
    report.write_text(header + "\n" + markdown_grid(columns, rows))
    return report


def main(args: argparse.Namespace) -> None:
    out: Path = args.out
    if unpacked := restore_runs(out):  # a clone holds the archive only: its runs are done
        print(f"{unpacked} files unpacked from {out / RUNS_ARCHIVE}")
    if not args.report_only:
        runs = [
            ComputeRun(algorithm, env_id, seed, args.cpu_minutes * 60, args.eval_every, EVAL_EPISODES)
            for seed in args.seeds
            for env_id in args.envs
            for algorithm in args.algorithms
        ]
        todo = [run for run in runs if not (out / run.folder / "result.json").is_file()]
        print(f"{len(runs) - len(todo)} of {len(runs)} runs done; {len(todo)} to run, {args.workers} at a time", flush=True)
        with fresh_process_pool(args.workers) as pool:
            futures = {pool.submit(execute, run, out): run for run in todo}
            for future in futures:
                result, run = future.result(), futures[future]
                best = max(float(np.mean(e["returns"])) for e in result["evaluations"])
                print(
                    f"{run.algorithm} {run.env_id} seed {run.seed}: best {best:,.1f}, {result['timesteps']:,} steps",
                    flush=True,
                )
        print(f"Results packed into {pack_runs(out)}")
    results = [json.loads(path.read_text()) for path in sorted((out / RUNS_FOLDER).glob("*/*/seed*/result.json"))]
    print(f"Report: {write_report(results, args)}")
