"""
The published REINFORCE/VPG results on MuJoCo, rl-zoo3's published A2C and PPO results, and the suite's results beside
them (``published.md``).

The published metric is the maximum over training of the mean return of a test evaluation (10 episodes each), on the
MuJoCo -v3 environments: Tianshou's REINFORCE benchmark (3M and 10M steps, mean ± std over seeds) and Spinning Up's
PyTorch VPG benchmark (3M steps, read off its plots, hence "~"). The suite computes the same metric from its own
deterministic evaluations (``--eval-episodes`` each, 10 by default) on the -v5 environments.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.common import markdown_grid
from benchmarks.statistics import per_env_estimates


@dataclass(frozen=True)
class Published:
    """
    One published number of the metric.

    :param source: Who published it, at what budget
    :param value: The number
    :param spread: Its ± (``None`` where the source gives none)
    :param approximate: Read off a plot
    """

    source: str
    value: float
    spread: float | None = None
    approximate: bool = False

    def __str__(self) -> str:
        if self.approximate:
            return f"~{self.value:g}"
        return f"{self.value:g}" if self.spread is None else f"{self.value:g} ± {self.spread:g}"


TIANSHOU_3M = "Tianshou REINFORCE, 3M steps"
SPINNING_UP_3M = "Spinning Up VPG (PyTorch), 3M steps"
TIANSHOU_10M = "Tianshou REINFORCE, 10M steps"

#: The published numbers, by the -v5 env the suite runs (the sources ran -v3): Tianshou 3M, Spinning Up 3M, Tianshou 10M.
PUBLISHED: dict[str, list[Published]] = {
    env_id: [Published(TIANSHOU_3M, *tianshou_3m), *spinning_up, Published(TIANSHOU_10M, *tianshou_10m)]
    for env_id, tianshou_3m, spinning_up, tianshou_10m in (
        ("HalfCheetah-v5", (884.0, 41.0), [Published(SPINNING_UP_3M, 600, approximate=True)], (1138.8, 104.7)),
        ("Hopper-v5", (395.8, 64.5), [Published(SPINNING_UP_3M, 800, approximate=True)], (416.0, 104.7)),
        ("Walker2d-v5", (412.0, 52.4), [Published(SPINNING_UP_3M, 460, approximate=True)], (440.9, 148.2)),
        ("Swimmer-v5", (35.3, 1.4), [Published(SPINNING_UP_3M, 51, approximate=True)], (35.6, 2.6)),
        ("Ant-v5", (474.9, 133.5), [Published(SPINNING_UP_3M, 5, approximate=True)], (1108.1, 323.1)),
        ("InvertedDoublePendulum-v5", (1059.7, 307.7), [], (7726.2, 1287.3)),
    )
}


#: rl-zoo3's published results (its ``benchmark.md``: one run each of its tuned entry, 1M steps on the -v3 envs, the
#: deterministic policy evaluated for 150k steps), by the -v5 env the suite runs. It has no InvertedDoublePendulum entry.
RL_ZOO3: dict[str, dict[str, float]] = {
    "a2c": {
        "HalfCheetah-v5": 3041.174,
        "Hopper-v5": 733.454,
        "Walker2d-v5": 581.835,
        "Swimmer-v5": 200.627,
        "Ant-v5": -44.023,
    },
    "ppo": {
        "HalfCheetah-v5": 5819.099,
        "Hopper-v5": 2410.435,
        "Walker2d-v5": 3478.798,
        "Swimmer-v5": 281.561,
        "Ant-v5": 1327.158,
    },
}


def best_return(result: dict[str, Any]) -> float | None:
    """
    The published metric of one run: the largest mean return of its evaluations after training started (the
    evaluation of the untrained policy does not count); ``None`` without one.

    :param result: A run's result; its ``curve`` is a list of ``[timesteps, mean return, std return]``
    """
    returns = [mean_return for timesteps, mean_return, _ in result["curve"] if timesteps > 0]
    return max(returns) if returns else None


def steps_to(result: dict[str, Any], value: float) -> float:
    """The timesteps of the run's first evaluation at or above ``value`` after training started; ``inf`` if none."""
    return next((timesteps for timesteps, mean, _ in result["curve"] if timesteps > 0 and mean >= value), math.inf)


def _median_steps(results: list[dict[str, Any]], value: float) -> str:
    median = float(np.median([steps_to(result, value) for result in results]))
    return "not reached" if math.isinf(median) else f"{median / 1e3:g}k"


def published_table(results: list[dict[str, Any]], algorithms: list[str]) -> str:
    """
    ``published.md``'s table: per env with published numbers, the published numbers, then each algorithm's best return
    (the published metric: mean and IQM over seeds) and final return (IQM), each with its 95% stratified-bootstrap
    interval (:mod:`benchmarks.statistics`), the median steps to reach each published number, the median fps and peak
    memory, and the CPU-hours of its runs (training and evaluation, all seeds).

    :param results: The suite's results
    :param algorithms: The algorithms, in table order
    """
    rows = []
    for env_id, published in PUBLISHED.items():
        on_env = [result for result in results if result["spec"]["env_id"] == env_id]
        if not on_env:
            continue
        budgets = {result["spec"]["budget"] for result in on_env}
        rows.append([f"**{env_id}** ({', '.join(f'{budget / 1e6:g}M' for budget in sorted(budgets))} steps)", *[""] * 5])
        rows += [[f"{number.source} (-v3)", str(number), *[""] * 4] for number in published]
        groups = {
            algorithm: [
                result for result in on_env if result["spec"]["algorithm"] == algorithm and best_return(result) is not None
            ]
            for algorithm in algorithms
        }
        groups = {algorithm: group for algorithm, group in groups.items() if group}
        bests = {algorithm: [v for r in group if (v := best_return(r)) is not None] for algorithm, group in groups.items()}
        best = per_env_estimates(bests)
        final = per_env_estimates({algorithm: [r["curve"][-1][1] for r in group] for algorithm, group in groups.items()})
        for algorithm, group in groups.items():
            steps = "; ".join(_median_steps(group, number.value) for number in published)
            cpu_hours = sum(result["train_seconds"] + result["eval_seconds"] for result in group) / 3600
            fps, peak = (np.median([result[key] for result in group]) for key in ("fps", "peak_rss_mb"))
            cost = f"{fps:.0f} fps, {peak:.0f} MiB, {cpu_hours:.1f} CPU-h"
            rows.append(
                [
                    f"{algorithm} ({len(group)} seed{'' if len(group) == 1 else 's'})",
                    str(best[algorithm][1]),
                    str(best[algorithm][0]),
                    str(final[algorithm][0]),
                    steps,
                    cost,
                ]
            )
    columns = [
        "Env / row",
        "Best mean test return: mean [95% CI]",
        "Best: IQM [95% CI]",
        "Final return: IQM [95% CI]",
        "Median steps to each published number",
        "Cost",
    ]
    return markdown_grid(columns, rows)
