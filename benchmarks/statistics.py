"""
The statistics of every comparison in the reports, from rliable (Agarwal et al., "Deep Reinforcement Learning at the
Edge of the Statistical Precipice", NeurIPS 2021), the library rl-zoo3's ``plot_from_file --rliable`` uses: the
interquartile mean (IQM) and the mean over runs, each with a 95% percentile confidence interval from rliable's
stratified bootstrap (runs resampled within each env), the probability of improvement of one algorithm over another
with its interval, and performance profiles of normalised scores.

A normalised score puts a random policy at 0 and a reference at 1 (rl-zoo3's :class:`ReferenceScore`); the
references are in :mod:`benchmarks.published`.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from matplotlib.axes import Axes
from rl_zoo3.plots.score_normalization import ReferenceScore
from rliable import library as rly
from rliable import metrics, plot_utils
from scipy.stats import trim_mean

#: The size of every interval
CONFIDENCE = 0.95
#: Bootstrap repetitions of every interval (rliable's performance profiles use as many)
REPETITIONS = 2000
#: The bootstrap's seed: the same runs give the same intervals
BOOTSTRAP_SEED = 0
#: Fewer runs than this and a percentile bootstrap interval under-covers (from two runs it is their range): such an
#: interval is written with its number of runs
FEW_RUNS = 5
#: Episodes of the random policy behind each env's 0 of the normalised score, and the seed of the first
RANDOM_EPISODES = 100
RANDOM_SEED = 0

Metric = Callable[[np.ndarray], float]
IQM: Metric = metrics.aggregate_iqm
MEAN: Metric = metrics.aggregate_mean


@dataclass(frozen=True)
class Estimate:
    """
    A point estimate and its confidence interval.

    :param value: The estimate from all runs
    :param low: The interval's lower end
    :param high: Its upper end
    :param runs: The runs behind it (of each env, of each algorithm compared)
    """

    value: float
    low: float
    high: float
    runs: int

    def format(self, digits: int = 1) -> str:
        """``value [low, high]``, with ``(n runs)`` after it from fewer than :data:`FEW_RUNS` runs; ``value (1 run)``."""
        if self.runs < 2:
            return f"{self.value:.{digits}f} (1 run)"
        interval = f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return interval if self.runs >= FEW_RUNS else f"{interval} ({self.runs} runs)"

    def __str__(self) -> str:
        return self.format()


def _bootstrap(scores: Mapping[str, Any], function: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    :func:`rliable.library.get_interval_estimates` with this module's size and repetitions, each key bootstrapped
    alone from :data:`BOOTSTRAP_SEED` with its runs in order of score (each column sorted; the bootstrap resamples
    each column apart): an estimate depends on its own runs only, not on their order or on the other keys.
    rliable 1.2's stratified bootstrap draws its indices from numpy's global generator (its ``random_state`` does not
    reach them), so that generator is seeded here and put back as it was.
    """
    points, intervals = {}, {}
    state = np.random.get_state()
    try:
        for key, value in scores.items():
            ordered = [np.sort(part, axis=0) for part in value] if isinstance(value, list) else np.sort(value, axis=0)
            np.random.seed(BOOTSTRAP_SEED)
            point, interval = rly.get_interval_estimates(
                {key: ordered}, function, reps=REPETITIONS, confidence_interval_size=CONFIDENCE
            )
            points[key], intervals[key] = point[key], interval[key]
    finally:
        np.random.set_state(state)
    return points, intervals


def interval_estimates(scores: Mapping[str, np.ndarray], metric: Metric) -> dict[str, Estimate]:
    """
    ``metric`` of each algorithm's scores, with its stratified-bootstrap confidence interval.

    :param scores: Per algorithm, a (runs × envs) matrix of scores; algorithms may have different numbers of runs
    :param metric: :data:`IQM`, :data:`MEAN`, or any function of such a matrix
    """
    matrices = {algorithm: np.asarray(matrix, dtype=np.float64) for algorithm, matrix in scores.items()}
    points, intervals = _bootstrap(matrices, metric)
    estimates = {}
    for algorithm, matrix in matrices.items():
        low, high = np.ravel(intervals[algorithm]).tolist()
        estimates[algorithm] = Estimate(float(points[algorithm]), low, high, runs=len(matrix))
    return estimates


def per_env_estimates(scores: Mapping[str, Sequence[float]]) -> dict[str, tuple[Estimate, Estimate]]:
    """
    The IQM and the mean of each algorithm's runs on one env, with their intervals.

    :param scores: Per algorithm, one score per run (no empty list)
    :return: Per algorithm, ``(IQM, mean)``
    """
    columns = {algorithm: np.asarray(values, dtype=np.float64)[:, None] for algorithm, values in scores.items()}
    iqm, mean = interval_estimates(columns, IQM), interval_estimates(columns, MEAN)
    return {algorithm: (iqm[algorithm], mean[algorithm]) for algorithm in columns}


def iqm_curve(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    A learning curve's IQM over runs at each of its points, with each point's interval (the stratified bootstrap
    resamples the runs of each point apart: rliable's sample-efficiency curves).

    :param returns: A (runs × points) matrix
    :return: The IQMs (points) and their intervals (2 × points)
    """
    points, intervals = _bootstrap({"curve": np.asarray(returns, dtype=np.float64)}, lambda m: trim_mean(m, 0.25, axis=0))
    return points["curve"], intervals["curve"]


def plot_iqm_curves(axes: Axes, x: np.ndarray, returns: Mapping[str, np.ndarray], xlabel: str) -> None:
    """
    Draw each learning curve's IQM over runs with its interval at each point (:func:`iqm_curve`) with rliable's
    sample-efficiency plot, one colour per curve in matplotlib's cycle.

    :param axes: Where to draw
    :param x: The points' positions
    :param returns: Per legend label, a (runs × points) matrix of returns
    :param xlabel: The x axis's label
    """
    for index, (label, matrix) in enumerate(returns.items()):
        points, intervals = iqm_curve(matrix)
        plot_utils.plot_sample_efficiency_curve(
            x,
            {label: points},
            {label: intervals},
            ax=axes,
            colors={label: f"C{index}"},
            xlabel=xlabel,
            ylabel="mean return, deterministic evaluation",
            labelsize="medium",
            ticklabelsize="small",
            marker="",
        )


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> Estimate:
    """
    P(X > Y): the probability that a run of X scores more than a run of Y on an env (ties count a half), averaged
    over envs, with its stratified-bootstrap interval.

    :param scores_x: X's (runs × envs) scores
    :param scores_y: Y's (runs × envs) scores, the same envs in the same order
    """
    pair = [np.asarray(scores_x, dtype=np.float64), np.asarray(scores_y, dtype=np.float64)]
    points, intervals = _bootstrap({"x,y": pair}, metrics.probability_of_improvement)
    low, high = np.ravel(intervals["x,y"]).tolist()
    return Estimate(float(points["x,y"]), low, high, runs=min(len(scores_x), len(scores_y)))


def performance_profiles(
    scores: Mapping[str, np.ndarray], taus: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """
    Each algorithm's performance profile: the fraction of its runs (all envs pooled) scoring above each τ, with
    stratified-bootstrap intervals (what :func:`rliable.library.create_performance_profile` computes, seeded).

    :param scores: Per algorithm, a (runs × envs) matrix of normalised scores
    :param taus: The thresholds
    :return: The profiles and their (2 × len(taus)) intervals, per algorithm
    """
    return _bootstrap(scores, lambda matrix: rly.score_distributions(matrix, taus))


def normalised(scores: np.ndarray, reference: ReferenceScore) -> np.ndarray:
    """
    Scores on ``reference``'s env, with its ``min`` at 0 and its ``max`` at 1 (as rl-zoo3's ``normalize_score``).

    :param scores: Returns on the env
    :param reference: The env's random-policy return (``min``) and reference return (``max``)
    """
    return (np.asarray(scores, dtype=np.float64) - reference.min) / (reference.max - reference.min)


def random_policy_return(env_id: str, episodes: int = RANDOM_EPISODES, seed: int = RANDOM_SEED) -> float:
    """
    The mean return of the uniformly random policy: ``episodes`` episodes, the env reset with ``seed``, ``seed + 1``,
    ..., each action drawn from the action space seeded likewise.

    :param env_id: The gymnasium id of the env
    :param episodes: The episodes to average
    :param seed: The first episode's seed
    """
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        env.action_space.seed(seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))
