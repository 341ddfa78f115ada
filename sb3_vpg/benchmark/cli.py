"""
The command: ``python -m sb3_vpg.benchmark [--quick] [options]``.

Runs every algorithm × env × seed that has no up-to-date result yet in ``--out`` (a result is up to date when it was
made with the same budget, evaluation settings and hyperparameters), two at a time in separate processes, printing
a line as each ends, then writes the report from all the results.
"""

import argparse
import concurrent.futures
import datetime
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sb3_vpg.benchmark.measure import fresh_process_pool
from sb3_vpg.benchmark.report import final_return, machine_description, markdown_table, package_versions, write_report
from sb3_vpg.benchmark.runs import execute, load_result, result_path
from sb3_vpg.benchmark.suite import ALGORITHMS, ENVS, QUICK_ENV, EnvSetting, RunSpec, run_specs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_vpg.benchmark",
        description="Train VPG (plain and best), A2C and PPO (rl-zoo3's hyperparameters) on the same envs and seeds, "
        "measure the rollout-collection ceiling, and write CSV, learning-curve PNGs and a markdown table.",
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_ENV.budget} steps per env, 2 seeds")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), help="gymnasium env ids (default: %(default)s)")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS), help="default: all")
    parser.add_argument("--seeds", type=int, help="seeds per algorithm and env: 0, 1, ... (default: 5, --quick 2)")
    parser.add_argument("--budget", type=int, help="training timesteps for every env (default: each env's own)")
    parser.add_argument("--eval-every", type=int, help="timesteps between evaluations (default: each env's own)")
    parser.add_argument("--eval-episodes", type=int, help="episodes per evaluation (default: 10, --quick 2)")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time, one process each (default: 2)")
    parser.add_argument("--device", default="cpu", help="torch device of every run (default: cpu)")
    parser.add_argument("--out", type=Path, help="output folder (default: benchmark-results, --quick benchmark-quick)")
    parser.add_argument("--force", action="store_true", help="run again the runs that already have a result")
    parser.add_argument("--report-only", action="store_true", help="only write the report from the stored results")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 5)
    args.eval_episodes = args.eval_episodes or (2 if args.quick else 10)
    args.out = args.out or Path("benchmark-quick" if args.quick else "benchmark-results")
    return args


def env_settings(args: argparse.Namespace) -> dict[str, EnvSetting]:
    """Each env's budget and evaluation interval: the suite's (or ``--quick``'s), then the command's overrides."""
    settings = {}
    for env_id in args.envs:
        setting = QUICK_ENV if args.quick or env_id not in ENVS else ENVS[env_id]
        if args.budget:
            setting = replace(setting, budget=args.budget)
        if args.eval_every:
            setting = replace(setting, eval_every=args.eval_every)
        settings[env_id] = setting
    return settings


def header(argv: list[str], args: argparse.Namespace) -> str:
    """The top of ``results.md``: how and where the results were made."""
    return (
        "# sb3-vpg benchmark\n\n"
        f"- Command: `python -m sb3_vpg.benchmark {shlex.join(argv)}`\n"
        f"- Date: {datetime.date.today().isoformat()}\n"
        f"- Machine: {machine_description()}; {args.workers} runs at a time on {args.device}\n"
        f"- Versions: {package_versions()}\n"
        f"- Seeds per algorithm and env: {args.seeds}, each run in a process of its own (peak RSS is its own); "
        f"{args.eval_episodes} deterministic evaluation episodes on a separate env per evaluation, left out of the "
        "training fps\n"
    )


def progress_line(done: int, total: int, spec: RunSpec, result: dict[str, Any], start: float) -> str:
    """The line printed when a run ends."""
    final = final_return(result)
    final_text = "" if final is None else f"final return {final:.1f}, "
    elapsed = time.monotonic() - start
    return (
        f"[{done}/{total}] {spec.name}: {final_text}{result['fps']:.0f} fps, peak {result['peak_rss_mb']:.0f} MiB, "
        f"{result['train_seconds'] + result['eval_seconds']:.0f} s (elapsed {elapsed / 60:.1f} min)"
    )


def is_up_to_date(spec: RunSpec, out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a result of ``spec``, made with the same settings and hyperparameters."""
    result = load_result(result_path(out_dir, spec))
    return result is not None and result["spec"] == asdict(spec)


def run_all(specs: list[RunSpec], out_dir: Path, workers: int) -> int:
    """
    Run ``specs`` in ``workers`` processes, a fresh one per run, printing a line as each ends.

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


def main(argv: list[str] | None = None) -> None:
    """
    Run the benchmark and write its report.

    :param argv: The command's options (default: ``sys.argv[1:]``)
    """
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    specs = run_specs(args.algorithms, env_settings(args), args.seeds, args.eval_episodes, args.device)
    todo = [] if args.report_only else [spec for spec in specs if args.force or not is_up_to_date(spec, args.out)]
    print(f"{len(specs)} runs, {len(specs) - len(todo)} with a stored result, {len(todo)} to run; output in {args.out}")
    failures = run_all(todo, args.out, args.workers) if todo else 0

    results = [result for spec in specs if (result := load_result(result_path(args.out, spec))) is not None]
    summary = write_report(args.out, results, args.algorithms, header(argv, args))
    print(markdown_table(summary))
    print(f"Wrote runs.csv, curves.csv, summary.csv, results.md and learning_curves_<env>.png in {args.out}")
    if failures:
        sys.exit(f"{failures} runs failed")
