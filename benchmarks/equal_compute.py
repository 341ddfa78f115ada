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
``runs.tar.xz`` (``--report-only`` unpacks it when the folder is gone). The report (:func:`write_report`): per env
and algorithm, the best evaluation within 5 and within the whole budget of CPU-minutes with rliable's intervals, the
CPU time to reach the published numbers, and the curves of return against CPU time.
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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from benchmarks.common import (
    EVAL_EPISODES,
    EVAL_SEED_OFFSET,
    QuickDefault,
    add_quick_and_out_arguments,
    evaluate_episodes,
    fresh_process_pool,
    machine_description,
    markdown_grid,
    package_versions,
    report_header,
)
from benchmarks.published import PUBLISHED, RL_ZOO3
from benchmarks.runs import RUNS_ARCHIVE, RUNS_FOLDER, experiment_manager, pack_runs, restore_runs, write_zoo_files
from benchmarks.statistics import per_env_estimates, plot_iqm_curves, probability_of_improvement

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
        evaluations = budget.evaluations
        write_zoo_files(
            folder,
            Path(manager.save_path),
            [evaluation["timesteps"] for evaluation in evaluations],
            [(evaluation["returns"], evaluation["lengths"]) for evaluation in evaluations],
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
    """
    The best mean return of the evaluations after training started, at checkpoints within ``cpu_seconds`` of training
    CPU time (the published metric, cut at a CPU budget).
    """
    every = result["run"]["eval_every"]
    inside = [e for e in result["evaluations"] if e["checkpoint"] > 0 and e["checkpoint"] * every <= cpu_seconds + 1e-6]
    return max(float(np.mean(e["returns"])) for e in inside)


def cpu_minutes_to(result: dict[str, Any], value: float) -> float:
    """The training CPU-minutes of the run's first evaluation after training started at or above ``value``; inf if none."""
    every = result["run"]["eval_every"]
    reached = (e["checkpoint"] for e in result["evaluations"] if e["checkpoint"] > 0 and np.mean(e["returns"]) >= value)
    return next(reached, math.inf) * every / 60


#: The columns of the numbers to reach: the best published REINFORCE/VPG number, rl-zoo3's published A2C and PPO
TARGETS = ["best published REINFORCE/VPG", "rl-zoo3's A2C", "rl-zoo3's PPO"]


def targets(env_id: str) -> list[float | None]:
    """The returns to reach on ``env_id``, in the order of :data:`TARGETS`; ``None`` where nothing is published."""
    published = max((number.value for number in PUBLISHED.get(env_id, [])), default=None)
    return [published, RL_ZOO3["a2c"].get(env_id), RL_ZOO3["ppo"].get(env_id)]


def _median_minutes(runs: list[dict[str, Any]], value: float | None) -> str:
    """The median CPU-minutes over ``runs`` to reach ``value``, and how many of them reach it."""
    if value is None:
        return "—"
    minutes = [cpu_minutes_to(result, value) for result in runs]
    median = float(np.median(minutes))
    reached = sum(not math.isinf(m) for m in minutes)
    return f"{'not reached' if math.isinf(median) else f'{median:g}'} ({reached}/{len(runs)})"


def plot_cpu_curves(path: Path, env_id: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    """
    Return against training CPU-minutes: each algorithm's IQM over seeds at each checkpoint with its 95% interval
    (rliable's sample-efficiency curve; every run evaluates at the same CPU checkpoints).

    :param path: The PNG to write
    :param env_id: The env
    :param runs: Per algorithm, its runs on ``env_id``
    """
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    # The evaluations are at checkpoints 0, 1, 2, ... eval_every CPU-seconds apart, in every run alike.
    length = min(len(result["evaluations"]) for mine in runs.values() for result in mine)
    every = next(iter(runs.values()))[0]["run"]["eval_every"]
    returns = {
        f"{algorithm} (seeds: {len(mine)})": np.array(
            [[np.mean(e["returns"]) for e in result["evaluations"][:length]] for result in mine]
        )
        for algorithm, mine in runs.items()
    }
    minutes = np.arange(length) * every / 60
    plot_iqm_curves(axes, minutes, returns, xlabel="training CPU-minutes (process time, envs included)")
    axes.set_title(f"{env_id}: IQM over seeds against CPU time, 95% CI")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def write_report(results: list[dict[str, Any]], args: argparse.Namespace) -> Path:
    """
    ``equal_compute.md``: per env and algorithm, the best evaluation within 5 CPU-minutes and within the budget (IQM
    and mean over seeds with 95% stratified-bootstrap intervals, rliable's; each seed's value), the probability that a
    VPG run's best beats the algorithm's, and the CPU-minutes to reach the published numbers; per env, a plot of return
    against CPU time (``equal_compute_<env>.png``).

    :param results: The results of the runs that finished
    :param args: The options of ``equal-compute``
    :return: The report's path
    """
    budget = max(result["run"]["cpu_budget"] for result in results)
    early_budget = min(300.0, budget)
    rows, reach_rows, pictures = [], [], []
    for env_id in dict.fromkeys(result["run"]["env_id"] for result in results):
        runs = {
            algorithm: sorted(
                (r for r in results if r["run"]["env_id"] == env_id and r["run"]["algorithm"] == algorithm),
                key=lambda r: r["run"]["seed"],
            )
            for algorithm in ALGORITHMS
        }
        runs = {algorithm: mine for algorithm, mine in runs.items() if mine}
        early = {algorithm: [best_within(result, early_budget) for result in mine] for algorithm, mine in runs.items()}
        whole = {algorithm: [best_within(result, budget) for result in mine] for algorithm, mine in runs.items()}
        early_estimates, whole_estimates = per_env_estimates(early), per_env_estimates(whole)
        for algorithm, mine in runs.items():
            improvement = "—"
            if "vpg-best" in whole and algorithm != "vpg-best":
                x, y = (np.array(whole[name])[:, None] for name in ("vpg-best", algorithm))
                improvement = probability_of_improvement(x, y).format(2)
            rows.append(
                [
                    env_id,
                    algorithm,
                    str(len(mine)),
                    *(str(estimate) for estimate in early_estimates[algorithm]),
                    *(str(estimate) for estimate in whole_estimates[algorithm]),
                    ", ".join(f"{value:,.0f}" for value in whole[algorithm]),
                    improvement,
                    f"{np.median([result['timesteps'] for result in mine]) / 1000:,.0f}k",
                ]
            )
            reach_rows.append([env_id, algorithm, *(_median_minutes(mine, value) for value in targets(env_id))])
        picture = f"equal_compute_{env_id}.png"
        plot_cpu_curves(args.out / picture, env_id, runs)
        pictures.append(f"![{env_id}]({picture})")
    whole_name = f"{budget / 60:g} CPU-min"
    columns = [
        "Env",
        "Algorithm",
        "Seeds",
        "Best within 5 CPU-min: IQM [95% CI]",
        "Mean [95% CI]",
        f"Best within {whole_name}: IQM [95% CI]",
        "Mean [95% CI] ",
        f"Per seed, {whole_name}",
        f"P(vpg-best > it), {whole_name}",
        "Median timesteps",
    ]
    header = report_header(
        "Equal compute: the best policy within a CPU budget",
        args.command_line,
        f"{args.workers} runs at a time, interleaved, one thread each",
        [
            f"Results measured on: {'; '.join(sorted({result['machine'] for result in results}))}",
            f"Budget: {whole_name} of training per run (process time, envs included, evaluations left out)",
            f"{EVAL_EPISODES} deterministic episodes per evaluation, every {results[0]['run']['eval_every']:g} CPU-seconds;"
            " the best leaves out the untrained policy's; values per seed in seed order",
            "Intervals: rliable's stratified bootstrap (an interval from fewer than 5 runs says how many)",
        ],
    )
    envs = list(dict.fromkeys(result["run"]["env_id"] for result in results))
    numbers = "; ".join(
        f"{env_id}: " + ", ".join("—" if value is None else f"{value:,.0f}" for value in targets(env_id)) for env_id in envs
    )
    reach = (
        "CPU-minutes of training to the first evaluation at or above each published number (median over seeds, "
        "'not reached' when half of them or more never do; in brackets the seeds that reach it). The numbers, in the "
        f"columns' order: {numbers}."
    )
    reach_columns = ["Env", "Algorithm", *TARGETS]
    text = [header, markdown_grid(columns, rows), reach, markdown_grid(reach_columns, reach_rows), *pictures]
    report = args.out / "equal_compute.md"
    report.write_text("\n\n".join(text) + "\n")
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
