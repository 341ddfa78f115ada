"""
Data-parallel VPG, 1 rank against several: ``python -m benchmarks scale-out [--quick] [options]``.

For each env, seed and number of ranks, one torchrun job (``benchmarks.scale_out_run``) trains VPG with the env's
``vpg.yml`` entry, the same hyperparameters whatever the ranks (the entry's ``n_envs`` split across them, so the batch
is the entry's). Rank 0 evaluates the deterministic policy (10 episodes) every ``eval_every`` timesteps while the other
ranks wait; evaluations are left out of the training time. The jobs run one at a time, the ranks of each on their own
cores, the rank counts of one seed one after another, so that the machine's noise falls on all of them alike.

Measured per job: the learning curve against timesteps (the same hyperparameters should give the same curve per
sample) and against training seconds, the training rate (timesteps per second of all ranks together), the training
seconds to the env's threshold, the share of training time rank 0 spends collecting (the rest: the updates and the
waits for the other ranks), and the CPU seconds of all ranks. Runs without a result in ``--out`` are run; then the
report (``scale_out.md`` and a PNG of the curves per env) is written from every result, and the results and logs are
packed into ``runs.tar.xz``; ``--report-only`` rewrites the report from the ``runs/`` folder, else from the archive.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import EVAL_EPISODES, QuickDefault, add_quick_and_out_arguments, markdown_grid, report_header
from benchmarks.runs import RUNS_ARCHIVE, RUNS_FOLDER, pack_runs, restore_runs
from benchmarks.statistics import iqm_curve, per_env_estimates

REPOSITORY = Path(__file__).parents[1]


@dataclass(frozen=True)
class ScaleOutEnv:
    """
    :param budget: Training timesteps, all ranks together
    :param eval_every: Timesteps between two evaluations
    :param threshold: The return whose first reach is timed: CartPole-v1's ``reward_threshold``; on MuJoCo the best
        published REINFORCE/VPG number (:mod:`benchmarks.published`)
    """

    budget: int
    eval_every: int
    threshold: float


ENVS = {
    "CartPole-v1": ScaleOutEnv(budget=100_000, eval_every=5_000, threshold=475.0),
    "HalfCheetah-v5": ScaleOutEnv(budget=1_000_000, eval_every=50_000, threshold=1138.8),
}
#: Seeds never used to tune an entry (the entries were chosen on seed 0's trials; the suite reports seeds 0–9)
SEEDS = [10, 11, 12]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_quick_and_out_arguments(parser, "CartPole-v1 for 10k timesteps, one seed", "scale-out")
    parser.add_argument("--envs", nargs="+", default=QuickDefault(list(ENVS), ["CartPole-v1"]), choices=list(ENVS))
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="numbers of ranks (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=QuickDefault(SEEDS, SEEDS[:1]))
    parser.add_argument("--budget", type=int, default=QuickDefault(None, 10_000), help="override the envs' budget")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the stored results")


def result_path(out: Path, env_id: str, ranks: int, seed: int) -> Path:
    """Where the result of one job is stored (its logs beside it), in ``--out``'s ``runs/`` folder."""
    return out / RUNS_FOLDER / env_id / f"ranks{ranks}" / f"seed{seed}.json"


def run_job(spec: dict[str, Any], ranks: int, path: Path) -> None:
    """One torchrun job of ``ranks`` ranks on this machine's loopback, one thread each; its output beside the result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec_path = path.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1"]
    command += [f"--nproc-per-node={ranks}", "-m", "benchmarks.scale_out_run", str(spec_path), str(path)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY)}
    with path.with_suffix(".torchrun.log").open("w") as log:
        subprocess.run(command, env=environment, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT, check=True)
    spec_path.unlink()


def first_reach(curve: list[list[float]], threshold: float) -> tuple[float, float] | None:
    """The timesteps and training seconds of the first evaluation at or above ``threshold``, if any."""
    return next(((timesteps, seconds) for timesteps, mean, _, seconds in curve if mean >= threshold), None)


def summary_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One row per env and number of ranks: rate, ratios to 1 rank, time and steps to the threshold, CPU-hours."""
    rows = []
    by_env: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_env.setdefault(result["spec"]["env_id"], []).append(result)
    for env_id, runs in by_env.items():
        threshold = ENVS[env_id].threshold
        one = {run["spec"]["seed"]: run for run in runs if run["ranks"] == 1}
        for ranks in sorted({run["ranks"] for run in runs}):
            mine = sorted((run for run in runs if run["ranks"] == ranks), key=lambda run: run["spec"]["seed"])
            ((fps, _),) = per_env_estimates({"fps": [run["fps"] for run in mine]}).values()
            reaches = [first_reach(run["curve"], threshold) for run in mine]
            reached = [reach for reach in reaches if reach is not None]
            speedups = [run["fps"] / one[run["spec"]["seed"]]["fps"] for run in mine if run["spec"]["seed"] in one]
            time_ratios = [
                reach[1] / one_reach[1]
                for run, reach in zip(mine, reaches, strict=True)
                if reach is not None
                and run["spec"]["seed"] in one
                and (one_reach := first_reach(one[run["spec"]["seed"]]["curve"], threshold)) is not None
            ]
            rows.append(
                [
                    env_id,
                    str(ranks),
                    str(len(mine)),
                    fps.format(0),
                    ", ".join(f"{ratio:.2f}" for ratio in speedups) or "—",
                    f"{len(reached)}/{len(mine)}",
                    ", ".join(f"{reach[0] / 1000:,.0f}k" if reach else "—" for reach in reaches),
                    ", ".join(f"{reach[1]:,.0f}" if reach else "—" for reach in reaches),
                    ", ".join(f"{ratio:.2f}" for ratio in time_ratios) or "—",
                    f"{np.mean([run['collect_seconds'] / run['train_seconds'] for run in mine]):.0%}",
                    f"{sum(run['cpu_seconds'] for run in mine) / 3600:.2f}",
                ]
            )
    return rows


COLUMNS = [
    "Env",
    "Ranks",
    "Seeds",
    "Timesteps/s, IQM [95% CI]",
    "× 1 rank, per seed",
    "Reached threshold",
    "Timesteps to it, per seed",
    "Training seconds to it, per seed",
    "× 1 rank, per seed ",
    "Rank 0 collecting",
    "CPU-hours (all seeds)",
]


def overlap_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """
    Per env and rank count above 1: at how many evaluations the 95% interval of the IQM over its seeds overlaps the
    1-rank seeds' (rliable's stratified bootstrap at each evaluation; the curves per sample agree within what the seeds
    resolve).
    """
    rows = []
    for env_id in ENVS:
        runs = [result for result in results if result["spec"]["env_id"] == env_id]
        curves = {
            ranks: [np.array(run["curve"])[:, 1] for run in runs if run["ranks"] == ranks]
            for ranks in sorted({run["ranks"] for run in runs})
        }
        if 1 not in curves:
            continue
        for ranks in [ranks for ranks in curves if ranks > 1]:
            # The evaluations come at the first update boundary past each multiple of eval_every: compared in order.
            n = min(len(curve) for curve in curves[1] + curves[ranks])
            (_, (one_low, one_high)), (_, (low, high)) = (
                iqm_curve(np.array([curve[:n] for curve in curves[count]])) for count in (1, ranks)
            )
            inside = int(((low <= one_high) & (one_low <= high)).sum())
            rows.append([env_id, str(ranks), f"{inside}/{n}", str(min(len(curves[1]), len(curves[ranks])))])
    return rows


def plot(results: list[dict[str, Any]], out: Path) -> list[Path]:
    """Per env: return against timesteps and against training seconds, each seed a line, one colour per rank count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for env_id in ENVS:
        runs = [result for result in results if result["spec"]["env_id"] == env_id]
        if not runs:
            continue
        figure, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ranks, colour in zip(
            sorted({run["ranks"] for run in runs}), ("tab:blue", "tab:orange", "tab:green"), strict=False
        ):
            for index, run in enumerate(run for run in runs if run["ranks"] == ranks):
                curve = np.array(run["curve"])
                label = f"{ranks} rank{'s' * (ranks > 1)}" if index == 0 else None
                axes[0].plot(curve[:, 0], curve[:, 1], color=colour, alpha=0.8, label=label)
                axes[1].plot(curve[:, 3], curve[:, 1], color=colour, alpha=0.8, label=label)
        for axis, xlabel in zip(axes, ("timesteps (all ranks)", "training seconds (wall-clock)"), strict=True):
            axis.axhline(ENVS[env_id].threshold, color="grey", linestyle=":", linewidth=1)
            axis.set_xlabel(xlabel)
            axis.set_ylabel("deterministic return (10 episodes)")
            axis.legend()
        figure.suptitle(f"VPG on {env_id}: one line per seed")
        figure.tight_layout()
        path = out / f"scale_out_{env_id}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def write_report(results: list[dict[str, Any]], args: argparse.Namespace) -> Path:
    out = args.out
    machines = sorted({result["machine"] for result in results})
    envs = ", ".join(f"{env} ({ENVS[env].budget:,} timesteps, evaluated every {ENVS[env].eval_every:,})" for env in ENVS)
    seeds = ", ".join(map(str, sorted({result["spec"]["seed"] for result in results})))
    header = report_header(
        "Data-parallel VPG: 1 rank against several",
        args.command_line,
        "one job at a time, each rank a process with one thread",
        [
            f"Results measured on: {'; '.join(machines)}",
            f"Envs: {envs}; thresholds {', '.join(f'{env} {ENVS[env].threshold:g}' for env in ENVS)}",
            f"Seeds: {seeds}; {EVAL_EPISODES} deterministic episodes per evaluation",
        ],
    )
    text = header + "\n" + markdown_grid(COLUMNS, summary_rows(results))
    text += "\nEvaluations at which the 95% interval of the IQM over N ranks' seeds overlaps the 1-rank seeds' (rliable):\n\n"
    text += markdown_grid(["Env", "Ranks", "Evaluations overlapping", "Seeds (fewest)"], overlap_rows(results))
    for path in plot(results, out):
        text += f"\n![{path.stem}]({path.name})\n"
    report = out / "scale_out.md"
    report.write_text(text)
    return report


def main(args: argparse.Namespace) -> None:
    out: Path = args.out
    if unpacked := restore_runs(out):  # a clone holds the archive only: its runs are done
        print(f"{unpacked} files unpacked from {out / RUNS_ARCHIVE}")
    if not args.report_only:
        for seed in args.seeds:
            for env_id in args.envs:
                setting = ENVS[env_id]
                for ranks in args.ranks:
                    path = result_path(out, env_id, ranks, seed)
                    if path.is_file():
                        continue
                    spec = dict(
                        env_id=env_id,
                        seed=seed,
                        budget=args.budget or setting.budget,
                        eval_every=min(setting.eval_every, (args.budget or setting.budget) // 2),
                        n_eval_episodes=EVAL_EPISODES,
                    )
                    start = time.perf_counter()
                    run_job(spec, ranks, path)
                    result = json.loads(path.read_text())
                    print(
                        f"{env_id} seed {seed}, {ranks} rank(s): {result['fps']:,.0f} timesteps/s, "
                        f"final {result['curve'][-1][1]:.1f} ({time.perf_counter() - start:,.0f} s)",
                        flush=True,
                    )
        print(f"Results and logs packed into {pack_runs(out)}")
    results = [json.loads(path.read_text()) for path in sorted((out / RUNS_FOLDER).glob("*/ranks*/seed*.json"))]
    print(f"Report: {write_report(results, args)}")
