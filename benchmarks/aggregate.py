"""
The suite's results aggregated over envs (``aggregate.md`` and ``aggregate_profiles.png``): each run's final return
normalised (the uniform random policy 0, rl-zoo3's published PPO 1), then, per algorithm, the IQM and the mean over
runs and envs with 95% stratified-bootstrap intervals, the probability of improvement of the first algorithm over each
of the others, and performance profiles, all from rliable (:mod:`benchmarks.statistics`).
"""

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rl_zoo3.plots.score_normalization import ReferenceScore
from rliable import plot_utils

from benchmarks.common import markdown_grid
from benchmarks.published import RL_ZOO3
from benchmarks.statistics import (
    IQM,
    MEAN,
    RANDOM_EPISODES,
    interval_estimates,
    normalised,
    performance_profiles,
    probability_of_improvement,
    random_policy_return,
)

#: The normalised scores at which the performance profiles are drawn
TAUS = np.linspace(0.0, 2.0, 81)


def references(env_ids: list[str]) -> dict[str, ReferenceScore]:
    """
    Each env's 0 and 1 of the normalised score: the uniform random policy's mean return (measured here) and rl-zoo3's
    published PPO return; envs without a published PPO return are left out.

    :param env_ids: The envs
    """
    return {
        env_id: ReferenceScore(env_id, random_policy_return(env_id), RL_ZOO3["ppo"][env_id])
        for env_id in env_ids
        if env_id in RL_ZOO3["ppo"]
    }


def score_matrices(
    results: list[dict[str, Any]], algorithms: list[str], references: dict[str, ReferenceScore]
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """
    Per algorithm, the (runs × envs) matrix of normalised final returns. The stratified bootstrap needs as many runs
    of an algorithm on every env, so an algorithm keeps its lowest seeds, as many on each env as on its env with the
    fewest; the envs are those, among the envs where every algorithm has a run, that keep the most runs in all (ties
    go to fewer envs, then to the references' order). So an env whose cell is still filling (one run of five in, say)
    waits instead of cutting an algorithm's runs on every other env, and a new run never lowers the runs kept.

    :param results: The suite's results
    :param algorithms: The algorithms; those without a run on a reference env are left out
    :param references: Each env's normalisation
    :return: The matrices, the envs of their columns, and the envs where every algorithm has a run that wait
    """
    finals: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for result in results:
        key = (result["spec"]["algorithm"], result["spec"]["env_id"])
        if key[1] in references and result["curve"]:
            finals.setdefault(key, []).append((result["spec"]["seed"], result["curve"][-1][1]))
    present = [algorithm for algorithm in algorithms if any(key[0] == algorithm for key in finals)]
    common = [env_id for env_id in references if all((algorithm, env_id) in finals for algorithm in present)]
    env_ids = max(
        (list(subset) for size in range(len(common) + 1) for subset in combinations(common, size)),
        key=lambda subset: sum(runs_per_env(finals, algorithm, subset) * len(subset) for algorithm in present),
    )
    matrices = {}
    for algorithm in present:
        runs = runs_per_env(finals, algorithm, env_ids)
        columns = [
            normalised(np.array([value for _, value in sorted(finals[algorithm, env_id])[:runs]]), references[env_id])
            for env_id in env_ids
        ]
        matrices[algorithm] = np.stack(columns, axis=1) if columns else np.empty((0, 0))
    return matrices, env_ids, [env_id for env_id in common if env_id not in env_ids]


def runs_per_env(finals: dict[tuple[str, str], list[tuple[int, float]]], algorithm: str, env_ids: list[str]) -> int:
    """
    How many runs of an algorithm the aggregate over ``env_ids`` keeps on each env: as many as on its env with the
    fewest (none without envs).

    :param finals: Per (algorithm, env), its runs
    :param algorithm: The algorithm
    :param env_ids: The envs
    :return: Its runs per env
    """
    return min((len(finals[algorithm, env_id]) for env_id in env_ids), default=0)


def plot_profiles(path: Path, scores: dict[str, np.ndarray]) -> None:
    """
    Plot each algorithm's performance profile with its 95% interval (rliable's plot).

    :param path: The PNG to write
    :param scores: Per algorithm, its (runs × envs) normalised scores
    """
    profiles, intervals = performance_profiles(scores, TAUS)
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    plot_utils.plot_performance_profiles(
        profiles,
        TAUS,
        performance_profile_cis=intervals,
        ax=axes,
        colors={algorithm: f"C{index}" for index, algorithm in enumerate(scores)},
        xlabel="normalised final return τ (random policy 0, rl-zoo3's PPO 1)",
        ylabel="fraction of runs with score > τ",
        labelsize="medium",
        ticklabelsize="small",
    )
    labels = [f"{algorithm} ({len(matrix)} per env)" for algorithm, matrix in scores.items()]
    axes.legend(axes.get_lines()[: len(scores)], labels, fontsize="small")
    axes.set_title(f"Performance profiles over {next(iter(scores.values())).shape[1]} MuJoCo envs, 95% CI")
    figure.tight_layout()
    figure.savefig(path)


def write_aggregate(out_dir: Path, results: list[dict[str, Any]], algorithms: list[str], header: str) -> None:
    """
    Write ``aggregate.md`` and ``aggregate_profiles.png`` when an env of the results has a reference and a run of every
    algorithm with runs on such envs; else remove them, so that a rebuilt report never keeps a stale aggregate.

    :param out_dir: The output folder
    :param results: The suite's results
    :param algorithms: The algorithms, in table order; the first is compared with each of the others
    :param header: Markdown put before the tables
    """
    env_references = references(list(dict.fromkeys(result["spec"]["env_id"] for result in results)))
    scores, env_ids, waiting = score_matrices(results, algorithms, env_references)
    scores = {algorithm: matrix for algorithm, matrix in scores.items() if matrix.size}
    if not env_ids or not scores:
        for name in ("aggregate.md", "aggregate_profiles.png"):
            (out_dir / name).unlink(missing_ok=True)
        return
    normalisation = [
        [reference.env_id, f"{reference.min:.1f}", f"{reference.max:.1f}"] for reference in env_references.values()
    ]
    iqm, mean = interval_estimates(scores, IQM), interval_estimates(scores, MEAN)
    aggregate = [
        [algorithm, str(len(matrix)), iqm[algorithm].format(2), mean[algorithm].format(2)]
        for algorithm, matrix in scores.items()
    ]
    first, *others = scores
    improvements = [
        [f"P({first} > {other})", probability_of_improvement(scores[first], scores[other]).format(2)] for other in others
    ]
    plot_profiles(out_dir / "aggregate_profiles.png", scores)
    text = [
        header,
        f"Final returns normalised per env: 0 is the uniform random policy's mean return ({RANDOM_EPISODES} episodes, "
        "measured here on the -v5 env), 1 is rl-zoo3's published PPO return (its benchmark: -v3, 1M steps, one run).",
        markdown_grid(["Env", "Random policy (0)", "rl-zoo3's PPO (1)"], normalisation),
        f"Over the {f'{len(env_ids)} envs' if len(env_ids) > 1 else 'env'} where every algorithm has runs "
        f"({', '.join(env_ids)}); 95% stratified-bootstrap "
        "intervals (rliable). An algorithm with more seeds on some envs keeps its lowest seeds, as many on each env"
        + (
            f"; {', '.join(waiting)} wait{'s' * (len(waiting) == 1)} for more runs: the envs taken are those that "
            "keep the most runs in all."
            if waiting
            else "."
        ),
        markdown_grid(["Algorithm", "Runs per env", "IQM [95% CI]", "Mean [95% CI]"], aggregate),
        "The probability that a run of the first scores more than a run of the second on an env (ties a half), "
        "averaged over the envs:",
        markdown_grid(["Probability of improvement", "Estimate [95% CI]"], improvements),
        "![Performance profiles](aggregate_profiles.png)",
    ]
    (out_dir / "aggregate.md").write_text("\n\n".join(text) + "\n")
