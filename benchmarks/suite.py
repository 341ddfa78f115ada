"""
The learning-curve suite: ``python -m benchmarks suite [--quick] [options]``.

Trains plain VPG (Eq. 4), VPG with its best variance reductions, and SB3's A2C and PPO with rl-zoo3's tuned
hyperparameters on the same envs, several seeds each, and measures the rollout-collection ceiling (SB3's loop of
``env.step`` and policy forward, without learning) alongside; see the docs' Benchmark page.

Runs every algorithm × env × seed that has no up-to-date result yet in ``--out`` (a result is up to date when it was
made with the same budget, evaluation settings and hyperparameters), two at a time in separate processes, printing
a line as each ends; then packs the per-run results and logs into ``runs.tar.xz`` and writes the report (CSV,
learning-curve PNGs, markdown table) from all the results. ``--report-only`` rewrites the report from the stored
results: the ``runs/`` folder if there is one, else the archive.
"""

import argparse
import collections
import concurrent.futures
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.common import (
    EVAL_EPISODES,
    QuickDefault,
    add_env_arguments,
    add_quick_and_out_arguments,
    at_least,
    fresh_process_pool,
    report_header,
)
from benchmarks.report import final_return, markdown_table, write_report
from benchmarks.runs import (
    ALGORITHMS,
    RUNS_ARCHIVE,
    RUNS_FOLDER,
    RunSpec,
    execute,
    load_result,
    load_results,
    pack_runs,
    read_hyperparams,
    restore_runs,
    result_path,
)


@dataclass(frozen=True)
class EnvSetting:
    """
    How long each algorithm trains on an env, and how often it is evaluated.

    :param budget: Training timesteps, the same for every algorithm
    :param eval_every: Timesteps between two evaluations of the deterministic policy
    """

    budget: int
    eval_every: int


#: The default suite, classic control (about an hour on 2 cores). Thresholds are gymnasium's ``reward_threshold``.
CLASSIC_CONTROL: dict[str, EnvSetting] = {
    "CartPole-v1": EnvSetting(budget=300_000, eval_every=10_000),
    "Acrobot-v1": EnvSetting(budget=200_000, eval_every=10_000),
    "Pendulum-v1": EnvSetting(budget=200_000, eval_every=10_000),
    "LunarLander-v3": EnvSetting(budget=300_000, eval_every=15_000),
}

#: MuJoCo (``--envs`` one of these; needs ``gymnasium[mujoco]``): 1M steps, evaluated every 50k, set beside the published
#: REINFORCE/VPG results (:mod:`benchmarks.published`). One run costs about 0.2–0.7 CPU-hours here, depending on the
#: algorithm (see ``published.md``'s cost column).
MUJOCO: dict[str, EnvSetting] = {
    env_id: EnvSetting(budget=1_000_000, eval_every=50_000)
    for env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Swimmer-v5", "Ant-v5", "InvertedDoublePendulum-v5")
}

#: The suite's table, by default: VPG plain and best, rl-zoo3's A2C and PPO, the ceiling (``equal-compute`` adds
#: A2C and PPO at SB3's defaults)
SUITE_ALGORITHMS = ("vpg-plain", "vpg-best", "a2c", "ppo", "rollout-ceiling")

#: Every env the suite has a setting for
ENVS: dict[str, EnvSetting] = {**CLASSIC_CONTROL, **MUJOCO}

#: Timesteps the rollout-collection ceiling steps (at most the env's budget): enough for a stable rate.
CEILING_STEPS = 20_000

#: ``--quick``: a few thousand steps per env, to check that everything runs and the report is written.
QUICK_ENV = EnvSetting(budget=4_000, eval_every=2_000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The options of ``suite``.

    :param parser: Its parser
    """
    add_quick_and_out_arguments(parser, f"{QUICK_ENV.budget} steps per env, 2 seeds", folder="benchmark")
    add_env_arguments(parser, list(CLASSIC_CONTROL))
    parser.add_argument(
        "--algorithms", nargs="+", default=list(SUITE_ALGORITHMS), choices=list(ALGORITHMS), help="default: %(default)s"
    )
    parser.add_argument(
        "--seeds", type=at_least(1), default=QuickDefault(5, 2), help="seeds per algorithm and env (default: %(default)s)"
    )
    parser.add_argument(
        "--first-seed",
        type=at_least(0),
        default=0,
        help="the first seed: seeds first, first + 1, ... (default: 0; 100 for seeds no tuning used)",
    )
    parser.add_argument("--budget", type=int, help="training timesteps for every env (default: each env's own)")
    parser.add_argument("--eval-every", type=int, help="timesteps between evaluations (default: each env's own)")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=QuickDefault(EVAL_EPISODES, 2),
        help="episodes per evaluation (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=2, help="runs at a time, one process each (default: 2)")
    parser.add_argument("--device", default="cpu", help="torch device of every run (default: cpu)")
    parser.add_argument("--force", action="store_true", help="run again the runs that already have a result")
    parser.add_argument("--report-only", action="store_true", help="only write the report from the stored results")


def env_settings(args: argparse.Namespace) -> dict[str, EnvSetting]:
    """
    Each env's budget and evaluation interval: the suite's (or ``--quick``'s), then the command's overrides.

    :param args: The options of ``suite``
    """
    settings = {}
    for env_id in args.envs:
        setting = QUICK_ENV if args.quick or env_id not in ENVS else ENVS[env_id]
        if args.budget:
            setting = replace(setting, budget=args.budget)
        if args.eval_every:
            setting = replace(setting, eval_every=args.eval_every)
        settings[env_id] = setting
    return settings


def run_specs(
    algorithms: list[str],
    envs: dict[str, EnvSetting],
    n_seeds: int,
    n_eval_episodes: int,
    device: str,
    first_seed: int = 0,
) -> list[RunSpec]:
    """
    Every run of the suite, env by env, then algorithm by algorithm, then seed by seed.

    :param algorithms: Keys of :data:`~benchmarks.runs.ALGORITHMS`
    :param envs: The envs and their settings
    :param n_seeds: Seeds per algorithm and env
    :param n_eval_episodes: Episodes per evaluation
    :param device: The torch device
    :param first_seed: The first seed: ``first_seed``, ``first_seed + 1``, ...
    """
    specs = []
    for env_id, setting in envs.items():
        for algorithm in algorithms:
            budget = setting.budget if ALGORITHMS[algorithm].learns else min(setting.budget, CEILING_STEPS)
            hyperparams = read_hyperparams(algorithm, env_id)
            specs += [
                RunSpec(algorithm, env_id, seed, budget, setting.eval_every, n_eval_episodes, device, hyperparams)
                for seed in range(first_seed, first_seed + n_seeds)
            ]
    return specs


def provenance(results: list[dict[str, Any]]) -> str:
    """
    Where the runs were made, as their results record it: a suite may be split across machines, and its fps and
    memory are each machine's own.

    :param results: The runs' results
    """
    places = collections.Counter(
        f"{result['machine']} ({result['versions']})" if "machine" in result else "a machine not recorded (older runs)"
        for result in results
    )
    return "Runs made on: " + "; ".join(f"{count} on {place}" for place, count in places.items())


def header(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    """
    The top of ``results.md``: how and where the results were made.

    :param args: The options of ``suite``, with the command line that gave them
    :param results: The runs' results
    """
    seeds = (
        f"Seeds per algorithm and env: {args.seeds} (from {args.first_seed}), each run in a process of its own "
        f"(peak RSS is its own); {args.eval_episodes} deterministic evaluation episodes on a separate env per "
        "evaluation, left out of the training fps"
    )
    how = f"{args.workers} runs at a time on {args.device}"
    return report_header("sb3-vpg benchmark", args.command_line, how, [seeds, provenance(results)])


def progress_line(done: int, total: int, spec: RunSpec, result: dict[str, Any], start: float) -> str:
    """
    The line printed when a run ends.

    :param done: Runs ended so far, this one included
    :param total: Runs to do
    :param spec: The run
    :param result: Its result
    :param start: When the first run started (``time.monotonic()``)
    """
    final = final_return(result)
    final_text = "" if final is None else f"final return {final:.1f}, "
    elapsed = time.monotonic() - start
    return (
        f"[{done}/{total}] {spec.name}: {final_text}{result['fps']:.0f} fps, peak {result['peak_rss_mb']:.0f} MiB, "
        f"{result['train_seconds'] + result['eval_seconds']:.0f} s (elapsed {elapsed / 60:.1f} min)"
    )


def is_up_to_date(spec: RunSpec, out_dir: Path) -> bool:
    """
    Whether ``out_dir`` holds a result of ``spec``, made with the same settings and hyperparameters.

    :param spec: The run
    :param out_dir: The suite's output folder
    """
    result = load_result(result_path(out_dir, spec))
    return result is not None and result["spec"] == asdict(spec)


def run_all(specs: list[RunSpec], out_dir: Path, workers: int) -> int:
    """
    Run ``specs`` in ``workers`` processes, a fresh one per run, printing a line as each ends.

    :param specs: The runs
    :param out_dir: The suite's output folder
    :param workers: Runs at a time
    :return: The number of runs that failed
    """
    failures = 0
    start = time.monotonic()
    with fresh_process_pool(workers) as pool:
        futures = {pool.submit(execute, spec, out_dir): spec for spec in specs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            spec = futures[future]
            try:
                print(progress_line(done, len(specs), spec, future.result(), start), flush=True)
            except Exception as error:
                failures += 1
                log = result_path(out_dir, spec).with_suffix(".log")
                print(f"[{done}/{len(specs)}] {spec.name} FAILED: {error!r} (see {log})", flush=True)
    return failures


def main(args: argparse.Namespace) -> None:
    """
    Run the suite's runs that have no up-to-date result, pack the results, and write the report.

    :param args: The options of ``suite``, with the command line that gave them
    """
    specs = run_specs(args.algorithms, env_settings(args), args.seeds, args.eval_episodes, args.device, args.first_seed)
    runs_folder = args.out / RUNS_FOLDER
    if not args.report_only and (unpacked := restore_runs(args.out)):
        print(f"Unpacked {unpacked} files of {args.out / RUNS_ARCHIVE} into {runs_folder}")
    todo = [] if args.report_only else [spec for spec in specs if args.force or not is_up_to_date(spec, args.out)]
    print(f"{len(specs)} runs, {len(specs) - len(todo)} with a stored result, {len(todo)} to run; output in {args.out}")
    failures = run_all(todo, args.out, args.workers) if todo else 0
    if not args.report_only and runs_folder.is_dir():
        print(f"Packed the results and logs of {runs_folder} into {pack_runs(args.out)}")

    results = load_results(args.out, specs)
    summary = write_report(args.out, results, args.algorithms, header(args, results))
    print(markdown_table(summary))
    print(f"Wrote runs.csv, curves.csv, summary.csv, results.md and learning_curves_<env>.png in {args.out}")
    if failures:
        raise SystemExit(f"{failures} runs failed")
