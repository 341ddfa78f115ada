"""
The suite's outputs, from the results of its runs: ``runs.csv`` (one row per run), ``curves.csv`` (every
evaluation), ``summary.csv`` and ``results.md`` (one row per algorithm × env) and ``learning_curves_<env>.png``; the
statistics are rliable's (:mod:`benchmarks.statistics`).
"""

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks import common
from benchmarks.aggregate import write_aggregate
from benchmarks.common import HOLD_WINDOW, markdown_grid, write_csv
from benchmarks.published import PUBLISHED, published_table
from benchmarks.statistics import Estimate, per_env_estimates, plot_iqm_curves

#: Points of the common timestep grid on which the seeds' learning curves are interpolated for the plots
CURVE_POINTS = 21

RUN_COLUMNS = (
    "env",
    "algorithm",
    "seed",
    "budget",
    "timesteps",
    "final_return",
    "steps_to_threshold",
    "fps",
    "train_seconds",
    "eval_seconds",
    "start_rss_mb",
    "peak_rss_mb",
)
CURVE_COLUMNS = ("env", "algorithm", "seed", "timesteps", "mean_return", "std_return")
SUMMARY_COLUMNS = (
    "env",
    "algorithm",
    "budget",
    "threshold",
    "seeds",
    "final_return_iqm",
    "final_return_iqm_low",
    "final_return_iqm_high",
    "final_return_mean",
    "final_return_mean_low",
    "final_return_mean_high",
    "seeds_final_above_threshold",
    "seeds_holding_threshold",
    "median_steps_to_threshold",
    "fps_median",
    "fps_vs_ceiling",
    "peak_rss_mb_median",
)


def _steps(value: float) -> str:
    """Timesteps, in thousands from 1000 on: ``30k``."""
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


#: The columns of the results table of ``results.md``
TABLE_COLUMNS = [
    "Env (threshold, budget)",
    "Algorithm",
    "Final return, IQM [95% CI]",
    "Final return, mean [95% CI]",
    "Seeds with final ≥ threshold",
    f"Seeds holding ≥ threshold (last {_steps(HOLD_WINDOW)} steps)",
    "Median steps to threshold",
    "Training fps",
    "fps / ceiling",
    "Peak RSS (MiB)",
]


def reward_threshold(env_id: str) -> float | None:
    """
    The return at which gymnasium considers an env solved.

    :param env_id: The gymnasium id of the env
    :return: Its ``reward_threshold``; ``None`` for envs without one, as Pendulum
    """
    return gym.spec(env_id).reward_threshold


def final_return(result: dict[str, Any]) -> float | None:
    """
    The mean return of a run's last evaluation.

    :param result: The run's result
    :return: ``None`` for the ceiling, which is not evaluated
    """
    return result["curve"][-1][1] if result["curve"] else None


def steps_to_threshold(result: dict[str, Any], threshold: float | None) -> float:
    """
    The timesteps of the first evaluation at or above ``threshold``. The evaluation before training is left out: an
    untrained policy can hold CartPole by chance, and that is not reached by learning.

    :param result: The run's result
    :param threshold: The env's threshold (``None`` for envs without one)
    :return: ``inf`` if no evaluation is at or above ``threshold``, or there is none
    """
    if threshold is not None:
        for timesteps, mean_return, _ in result["curve"]:
            if timesteps > 0 and mean_return >= threshold:
                return timesteps
    return math.inf


def holds_threshold(result: dict[str, Any], threshold: float | None, window: int = HOLD_WINDOW) -> bool | None:
    """
    Whether every evaluation in the last ``window`` timesteps of the run is at or above ``threshold``
    (:func:`benchmarks.common.holds_threshold`).

    :param result: A run's result; its ``curve`` is a list of ``[timesteps, mean return, std return]``
    :param threshold: The env's threshold (``None`` for envs without one)
    :param window: The evaluations at timesteps ≥ the final evaluation's − ``window`` count, the final one included,
        the one before training never
    :return: ``None`` without a threshold or without evaluations (the ceiling); ``False`` for a run without an
        evaluation after training started
    """
    if threshold is None or not result["curve"]:
        return None
    return common.holds_threshold([(timesteps, mean) for timesteps, mean, _ in result["curve"]], threshold, window)


def run_rows(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The rows of ``runs.csv``: one per run, its spec and what it measured.

    :param results: The results of the runs
    """
    rows = []
    for result in results:
        spec = result["spec"]
        steps = steps_to_threshold(result, reward_threshold(spec["env_id"]))
        rows.append(
            {
                "env": spec["env_id"],
                "algorithm": spec["algorithm"],
                "seed": spec["seed"],
                "budget": spec["budget"],
                "timesteps": result["timesteps"],
                "final_return": final_return(result),
                "steps_to_threshold": None if math.isinf(steps) else steps,
                "fps": result["fps"],
                "train_seconds": result["train_seconds"],
                "eval_seconds": result["eval_seconds"],
                "start_rss_mb": result["start_rss_mb"],
                "peak_rss_mb": result["peak_rss_mb"],
            }
        )
    return rows


def summary_rows(results: list[dict[str, Any]], algorithms: list[str]) -> list[dict[str, Any]]:
    """
    The rows of ``summary.csv``: one per env and algorithm (in the order of ``algorithms``), over the seeds that ran.

    The final return's IQM and mean come with 95% stratified-bootstrap intervals (:mod:`benchmarks.statistics`).
    Unreached thresholds count as infinitely late, so the median is empty when half of the seeds or more never
    reach it. ``fps_vs_ceiling`` divides by the median rate of the rollout-collection ceiling on the same env.

    :param results: The results of the runs
    :param algorithms: The algorithms, in table order
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["spec"]["env_id"], result["spec"]["algorithm"]), []).append(result)
    env_ids = list(dict.fromkeys(env_id for env_id, _ in groups))
    rows = []
    for env_id in env_ids:
        threshold = reward_threshold(env_id)
        ceiling = groups.get((env_id, "rollout-ceiling"))
        ceiling_fps = float(np.median([result["fps"] for result in ceiling])) if ceiling else None
        finals_of = {
            algorithm: [value for value in map(final_return, groups.get((env_id, algorithm), [])) if value is not None]
            for algorithm in algorithms
        }
        estimates = per_env_estimates({algorithm: finals for algorithm, finals in finals_of.items() if finals})
        for algorithm in algorithms:
            group = groups.get((env_id, algorithm))
            if not group:
                continue
            finals = finals_of[algorithm]
            iqm, mean = estimates.get(algorithm, (None, None))
            fps = float(np.median([result["fps"] for result in group]))
            median_steps = float(np.median([steps_to_threshold(result, threshold) for result in group]))
            rows.append(
                {
                    "env": env_id,
                    "algorithm": algorithm,
                    "budget": group[0]["spec"]["budget"],
                    "threshold": threshold,
                    "seeds": len(group),
                    **{
                        f"final_return_{name}{end}": None if estimate is None else getattr(estimate, field)
                        for name, estimate in (("iqm", iqm), ("mean", mean))
                        for end, field in (("", "value"), ("_low", "low"), ("_high", "high"))
                    },
                    "seeds_final_above_threshold": None
                    if threshold is None or not finals
                    else sum(value >= threshold for value in finals),
                    "seeds_holding_threshold": None
                    if threshold is None or not finals
                    else sum(bool(holds_threshold(result, threshold)) for result in group),
                    "median_steps_to_threshold": None if not finals or math.isinf(median_steps) else median_steps,
                    "fps_median": fps,
                    "fps_vs_ceiling": None if ceiling_fps is None else fps / ceiling_fps,
                    "peak_rss_mb_median": float(np.median([result["peak_rss_mb"] for result in group])),
                }
            )
    return rows


def _interval(row: dict[str, Any], key: str) -> str:
    """A summary row's estimate ``key`` with its interval, as :class:`benchmarks.statistics.Estimate` writes it."""
    if row[key] is None:
        return "—"
    return str(Estimate(row[key], row[f"{key}_low"], row[f"{key}_high"], runs=row["seeds"]))


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """
    The results table of ``results.md``, one row per env and algorithm.

    :param summary: The rows of :func:`summary_rows`
    """
    rows = []
    for row in summary:
        threshold = "no threshold" if row["threshold"] is None else f"≥ {row['threshold']:g}"
        env = f"{row['env']} ({threshold}, {_steps(row['budget'])})"
        iqm, mean = (_interval(row, f"final_return_{name}") for name in ("iqm", "mean"))
        above = "—" if row["seeds_final_above_threshold"] is None else f"{row['seeds_final_above_threshold']}/{row['seeds']}"
        holding = "—" if row["seeds_holding_threshold"] is None else f"{row['seeds_holding_threshold']}/{row['seeds']}"
        if row["final_return_mean"] is None or row["threshold"] is None:
            steps = "—"
        elif row["median_steps_to_threshold"] is None:
            steps = "not reached"
        else:
            steps = _steps(row["median_steps_to_threshold"])
        ratio = "—" if row["fps_vs_ceiling"] is None else f"{row['fps_vs_ceiling']:.2f}"
        fps, rss = f"{row['fps_median']:.0f}", f"{row['peak_rss_mb_median']:.0f}"
        rows.append([env, row["algorithm"], iqm, mean, above, holding, steps, fps, ratio, rss])
    return markdown_grid(TABLE_COLUMNS, rows)


def plot_learning_curves(path: Path, env_id: str, results: list[dict[str, Any]], algorithms: list[str]) -> None:
    """
    Plot, for each algorithm, the IQM over seeds of the evaluation return against timesteps, with its 95%
    stratified-bootstrap interval at each point (rliable's sample-efficiency curve); each seed's curve is interpolated
    linearly on a common grid.

    :param path: The PNG to write
    :param env_id: The env
    :param results: The results of the runs on ``env_id``
    :param algorithms: The algorithms, in legend order
    """
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    curves_of = {
        algorithm: [result["curve"] for result in results if result["spec"]["algorithm"] == algorithm and result["curve"]]
        for algorithm in algorithms
    }
    curves_of = {algorithm: curves for algorithm, curves in curves_of.items() if curves}
    grid = np.linspace(0, max(curve[-1][0] for curves in curves_of.values() for curve in curves), CURVE_POINTS)
    # Each grid point a column: the bootstrap resamples the seeds of each point, so each point's interval is its own
    returns = {
        f"{algorithm} (seeds: {len(curves)})": np.array(
            [np.interp(grid, [p[0] for p in curve], [p[1] for p in curve]) for curve in curves]
        )
        for algorithm, curves in curves_of.items()
    }
    plot_iqm_curves(axes, grid, returns, xlabel="timesteps")
    threshold = reward_threshold(env_id)
    if threshold is not None:
        axes.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axes.set_title(f"{env_id}: IQM over seeds, 95% CI")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def write_report(out_dir: Path, results: list[dict[str, Any]], algorithms: list[str], header: str) -> list[dict[str, Any]]:
    """
    Write every output of the suite to ``out_dir``; with envs that have published results, ``published.md`` too
    (:mod:`benchmarks.published`), and with two or more envs that have a published PPO return, the aggregate over
    envs (:mod:`benchmarks.aggregate`).

    :param out_dir: The output folder
    :param results: The results of the runs that finished
    :param algorithms: The algorithms, in table order
    :param header: Markdown put before the table in ``results.md`` (the command, the date, the machine)
    :return: The summary rows
    """
    write_csv(out_dir / "runs.csv", run_rows(results), RUN_COLUMNS)
    curve_rows = [
        {
            "env": result["spec"]["env_id"],
            "algorithm": result["spec"]["algorithm"],
            "seed": result["spec"]["seed"],
            "timesteps": timesteps,
            "mean_return": mean_return,
            "std_return": std_return,
        }
        for result in results
        for timesteps, mean_return, std_return in result["curve"]
    ]
    write_csv(out_dir / "curves.csv", curve_rows, CURVE_COLUMNS)
    summary = summary_rows(results, algorithms)
    write_csv(out_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    env_ids = list(dict.fromkeys(result["spec"]["env_id"] for result in results))
    pictures = []
    for env_id in env_ids:
        picture = f"learning_curves_{env_id}.png"
        plot_learning_curves(out_dir / picture, env_id, [r for r in results if r["spec"]["env_id"] == env_id], algorithms)
        pictures.append(f"![{env_id}]({picture})")
    (out_dir / "results.md").write_text(header + "\n" + markdown_table(summary) + "\n" + "\n\n".join(pictures) + "\n")
    if any(env_id in PUBLISHED for env_id in env_ids):
        (out_dir / "published.md").write_text(header + "\n" + published_table(results, algorithms))
    write_aggregate(out_dir, results, algorithms, header)
    return summary
