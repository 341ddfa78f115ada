"""
What the subcommands of ``python -m benchmarks`` share: the header of their reports, markdown and CSV output, the
options they have in common, the fresh process of each measurement and what it measures about itself (peak memory,
the time in ``env.step``, the rollout-collection ceiling), and the deterministic evaluation of a training run.

This module imports neither rl-zoo3 nor matplotlib, so that a process that measures throughput and memory with it
(:mod:`benchmarks.throughput`) does not carry them.
"""

import argparse
import concurrent.futures
import csv
import datetime
import multiprocessing
import os
import platform
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Generic, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, sync_envs_normalization
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

#: The command that runs the harness, from the repository root
COMMAND = "python -m benchmarks"

#: Packages whose versions the reports state
VERSIONED = ("sb3-vpg", "stable-baselines3", "rl_zoo3", "torch", "gymnasium", "numpy")

#: Added to a run's seed to seed its evaluation env, so that the evaluation does not replay the training env's episodes
EVAL_SEED_OFFSET = 10_000

#: The evaluation seed offset of ``trial``: the trials behind ``vpg.yml``'s entries were run with it, so a trial's
#: seed 0 is not the suite's seed 0
TRIAL_EVAL_SEED_OFFSET = 1_000

#: Deterministic episodes per evaluation
EVAL_EPISODES = 10

#: Timesteps at the end of a run over which every evaluation must be at or above the threshold for the run to *hold*
#: it: a run that touches the threshold and falls back does not. On CartPole-v1, evaluated every 10k steps, that is
#: the final evaluation and the two or three before it
HOLD_WINDOW = 30_000

#: VPG's batch in steps over all envs in the throughput and carry-over measurements: ``n_steps = BATCH_STEPS // n_envs``
BATCH_STEPS = 2048

#: VPG with a learned baseline: reward-to-go, V(s_t) subtracted, advantages normalised
VALUE_BASELINE: dict[str, Any] = dict(reward_to_go=True, baseline="value", normalize_advantage=True)

T = TypeVar("T")


@dataclass(frozen=True)
class QuickDefault(Generic[T]):
    """
    The default of an option that depends on ``--quick``; :func:`resolve_quick_defaults` puts the right one in place.

    :param full: The default of a full run
    :param quick: The default with ``--quick``
    """

    full: T
    quick: T

    def __str__(self) -> str:
        def show(value: Any) -> str:
            return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

        return f"{show(self.full)}, --quick {show(self.quick)}"


def resolve_quick_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """
    Replace every :class:`QuickDefault` left in ``args`` (an option not given) by its value for ``args.quick``.

    :param args: The parsed options
    :return: ``args``, changed in place
    """
    for name, value in vars(args).items():
        if isinstance(value, QuickDefault):
            setattr(args, name, value.quick if getattr(args, "quick", False) else value.full)
    return args


def add_quick_and_out_arguments(parser: argparse.ArgumentParser, what: str, folder: str) -> None:
    """
    ``--quick`` and ``--out``, whose default folder is ``<folder>-results``, with ``--quick`` ``<folder>-quick``.

    :param parser: The subcommand's parser
    :param what: What ``--quick`` runs, for its help
    :param folder: The stem of the default output folder
    """
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {what}")
    default = QuickDefault(Path(f"{folder}-results"), Path(f"{folder}-quick"))
    parser.add_argument("--out", type=Path, default=default, help="output folder (default: %(default)s)")


def at_least(minimum: int) -> Callable[[str], int]:
    """
    An ``argparse`` type: an integer no smaller than ``minimum``, else an error that says so.

    :param minimum: The smallest value allowed
    """

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, not {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type so in its message for a non-integer
    return parse


def add_seed_argument(parser: argparse.ArgumentParser, of: str = "the envs and the model") -> None:
    """
    ``--seed``, one integer, 0 by default.

    :param parser: The subcommand's parser
    :param of: What it seeds, for its help
    """
    parser.add_argument("--seed", type=int, default=0, help=f"seed of {of} (default: %(default)s)")


def add_env_arguments(
    parser: argparse.ArgumentParser, envs: list[str] | QuickDefault[list[str]], n_envs: Iterable[int] | None = None
) -> None:
    """
    ``--envs`` (gymnasium env ids) and, when ``n_envs`` is given, ``--n-envs`` (numbers of envs).

    :param parser: The subcommand's parser
    :param envs: The default env ids (a list, or a :class:`QuickDefault`)
    :param n_envs: The default numbers of envs; ``None``: no ``--n-envs``
    """
    parser.add_argument("--envs", nargs="+", default=envs, help="gymnasium env ids (default: %(default)s)")
    if n_envs is not None:
        parser.add_argument(
            "--n-envs", type=int, nargs="+", default=list(n_envs), help="numbers of envs (default: %(default)s)"
        )


def machine_description() -> str:
    """The CPU model, the number of logical CPUs and the operating system, for a report's header."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def package_versions() -> str:
    """Python's version and those of :data:`VERSIONED`, for a report's header."""
    return ", ".join([f"Python {platform.python_version()}", *(f"{name} {version(name)}" for name in VERSIONED)])


def report_header(title: str, command_line: str, how: str, details: Iterable[str]) -> str:
    """
    The top of a report: how, when and where its numbers were made.

    :param title: The report's title
    :param command_line: The command that made it
    :param how: How the measurements shared the machine (after the machine's description)
    :param details: More lines: the settings
    """
    lines = [
        f"Command: `{command_line}`",
        f"Date: {datetime.date.today().isoformat()}",
        f"Machine: {machine_description()}; {how}",
        f"Versions: {package_versions()}",
        *details,
    ]
    return f"# {title}\n\n" + "".join(f"- {line}\n" for line in lines)


def markdown_row(cells: Iterable[str]) -> str:
    """One row of a markdown table, its cells already formatted."""
    return "| " + " | ".join(cells) + " |"


def markdown_header(columns: list[str]) -> str:
    """The first two lines of a markdown table: the column headers and the line under them."""
    return markdown_row(columns) + "\n|" + "---|" * len(columns)


def markdown_grid(columns: list[str], rows: Iterable[list[str]]) -> str:
    """
    A markdown table, ending with a newline.

    :param columns: The column headers
    :param rows: The cells of each row, already formatted
    """
    return "\n".join([markdown_header(columns), *map(markdown_row, rows)]) + "\n"


def formatted_table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """
    A markdown table of ``rows``, each cell a ``str.format`` template filled from its row.

    :param rows: One dict per row
    :param columns: Each column's header and template, e.g. ``("Training fps", "{fps:.0f}")``
    """
    cells = [[template.format(**row) for _, template in columns] for row in rows]
    return markdown_grid([header for header, _ in columns], cells)


def write_csv(path: Path, rows: list[dict[str, Any]], columns: Iterable[str]) -> None:
    """
    Write ``rows`` to ``path`` with a header; ``None`` becomes an empty cell.

    :param path: The CSV file
    :param rows: One dict per row, keyed by column
    :param columns: The columns, in order
    """
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)


def fresh_process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """
    A pool that runs each task in a fresh process (``spawn``), so that each task's peak resident memory is its own.

    :param workers: Tasks at a time
    """
    context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1)


def _status_mb(field: str) -> float | None:
    """A memory line of Linux's ``/proc/self/status`` (``VmHWM``, ``VmRSS``), in MiB; ``None`` elsewhere."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    return int(next(line.split()[1] for line in status.read_text().splitlines() if line.startswith(f"{field}:"))) / 2**10


def peak_rss_mb() -> float:
    """
    The peak resident memory of this process so far, in MiB: Linux's ``VmHWM``, the high-water mark of this process's
    own memory. ``ru_maxrss`` would not do on Linux: a spawned process starts with its parent's peak, kept across exec.
    """
    peak = _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20 if peak is None else peak  # bytes on macOS


def rss_mb() -> float:
    """The resident memory of this process now, in MiB (Linux's ``VmRSS``)."""
    rss = _status_mb("VmRSS")
    if rss is None:
        raise RuntimeError("rss_mb reads /proc/self/status: Linux only")
    return rss


def reset_peak_rss() -> None:
    """Make the peak resident memory (``VmHWM``) the memory resident now, so that a later peak is that of what follows."""
    Path("/proc/self/clear_refs").write_text("5")


class StepTimer(VecEnvWrapper):
    """
    Adds up the wall time spent in the wrapped envs' ``step_wait``: with ``DummyVecEnv``, the envs' own ``step``
    (their gymnasium wrappers and the resets at episode ends included). Everything else is passed through unchanged.

    :param venv: The envs to time
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.env_seconds = 0.0

    def reset(self) -> VecEnvObs:
        """The wrapped envs' ``reset``, not timed."""
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        """The wrapped envs' ``step_wait``, its wall time added to ``env_seconds``."""
        start = time.perf_counter()
        stepped = self.venv.step_wait()
        self.env_seconds += time.perf_counter() - start
        return stepped


def step_without_learning(model: BaseAlgorithm, n_steps: int) -> dict[str, Any]:
    """
    The rollout-collection ceiling: SB3's collection loop (policy forward, action to the env, ``env.step``) on the
    model's envs with its policy, storing and learning nothing.

    :param model: A VPG model with its envs
    :param n_steps: Timesteps to step, over all envs
    :return: The timesteps stepped, the rate and the time
    """
    env = model.get_env()
    assert env is not None
    model.policy.set_training_mode(False)
    obs = env.reset()
    steps = 0
    start = time.perf_counter()
    while steps < n_steps:
        with th.no_grad():
            actions, _, _ = model.policy(obs_as_tensor(obs, model.device))  # type: ignore[arg-type]
        obs, _, _, _ = env.step(model._env_actions(actions.cpu().numpy()))  # type: ignore[attr-defined]
        steps += env.num_envs
    seconds = time.perf_counter() - start
    return {"timesteps": steps, "fps": steps / seconds, "train_seconds": seconds, "eval_seconds": 0.0, "curve": []}


def evaluate_episodes(model: BaseAlgorithm, env: VecEnv, n_episodes: int) -> tuple[list[float], list[int]]:
    """Every episode's return and length of the model's deterministic policy (SB3's ``evaluate_policy``)."""
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    assert isinstance(returns, list) and isinstance(lengths, list)
    return [float(value) for value in returns], [int(value) for value in lengths]


def deterministic_return(model: BaseAlgorithm, env: VecEnv | gym.Env, n_episodes: int) -> tuple[float, float]:
    """
    The mean and standard deviation of the return of the model's deterministic policy over ``n_episodes`` episodes.

    :param model: The model
    :param env: The evaluation env
    :param n_episodes: Episodes to play
    """
    mean, std = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True)
    assert isinstance(mean, float) and isinstance(std, float)
    return mean, std


class DeterministicEvaluation(BaseCallback):
    """
    Evaluate the deterministic policy on a separate env whenever ``eval_every`` timesteps have passed since the last
    evaluation, timing the evaluations so that they can be left out of the training time.

    :param eval_env: The evaluation env (its ``VecNormalize`` statistics, if any, are copied from the training env
        before each evaluation, so it must be wrapped as the training env is)
    :param eval_every: Timesteps between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    :param before_and_after: Also evaluate before training and at its end (when it ends after the last evaluation):
        the learning curves of the suite
    :param verbose: 1: print a line per evaluation, with the mean return and length of the training episodes in
        ``ep_info_buffer`` (the stochastic policy, SB3's ``rollout/ep_rew_mean``) and the last update's mean entropy
        of the policy (VPG's ``train/entropy``) next to the evaluation's
    """

    def __init__(
        self,
        eval_env: VecEnv,
        eval_every: int,
        n_eval_episodes: int = EVAL_EPISODES,
        before_and_after: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.eval_env = eval_env
        self.eval_every = eval_every
        self.n_eval_episodes = n_eval_episodes
        self.before_and_after = before_and_after
        #: ``[timesteps, mean return, std of the return]`` of each evaluation
        self.curve: list[list[float]] = []
        #: Each evaluation's episodes: their returns and their lengths (rl-zoo3's ``evaluations.npz``)
        self.episodes: list[tuple[list[float], list[int]]] = []
        #: ``[timesteps, mean return, mean length]`` of the last 100 training episodes (``ep_info_buffer``: the
        #: stochastic policy, SB3's ``rollout/ep_rew_mean``) at each evaluation; ``None`` before an episode has ended
        self.training_curve: list[list[float | None]] = []
        #: Time spent evaluating
        self.seconds = 0.0
        #: The last update's mean entropy of π(·|s_t) over its batch (nan before the first)
        self._entropy = float("nan")

    def _last_evaluated(self) -> float:
        return self.curve[-1][0] if self.curve else 0

    def _on_training_start(self) -> None:
        if self.before_and_after:
            self._evaluate()

    def _on_rollout_start(self) -> None:
        # SB3 dumps the logger after a rollout, so here it still holds the last update's values; an update skipped
        # for want of a finished episode records none, and the entropy of the update before it is kept.
        self._entropy = self.model.logger.name_to_value.get("train/entropy", self._entropy)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._last_evaluated() + self.eval_every:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.before_and_after and self.num_timesteps > self._last_evaluated():
            self._evaluate()

    def _evaluate(self) -> None:
        start = time.perf_counter()
        sync_envs_normalization(self.training_env, self.eval_env)
        returns, lengths = evaluate_episodes(self.model, self.eval_env, self.n_eval_episodes)
        mean, std = float(np.mean(returns)), float(np.std(returns))  # evaluate_policy's mean and std
        self.curve.append([self.num_timesteps, mean, std])
        self.episodes.append((returns, lengths))
        self.seconds += time.perf_counter() - start
        episodes = self.model.ep_info_buffer
        train_return = float(np.mean([episode["r"] for episode in episodes])) if episodes else None
        train_length = float(np.mean([episode["l"] for episode in episodes])) if episodes else None
        self.training_curve.append([self.num_timesteps, train_return, train_length])
        if self.verbose >= 1:
            nan = float("nan")
            line = (
                f"{self.num_timesteps:>8d}  eval {mean:8.1f}  train {nan if train_return is None else train_return:8.1f}"
                f"  length {nan if train_length is None else train_length:5.0f}  entropy {self._entropy:6.3f}"
            )
            print(line, flush=True)


def holds_threshold(curve: Sequence[tuple[float, float]], threshold: float, window: int = HOLD_WINDOW) -> bool:
    """
    Whether every evaluation in the last ``window`` timesteps of a run is at or above ``threshold``.

    :param curve: ``(timesteps, mean return)`` of each evaluation, in order
    :param threshold: The return to hold
    :param window: The evaluations at timesteps ≥ the final evaluation's − ``window`` count, the final one included.
        An evaluation before training (at 0 timesteps) never does, even in a run shorter than ``window``: an
        untrained policy can hold CartPole by chance
    :return: ``False`` for a curve without an evaluation after training started
    """
    if not curve:
        return False
    start = curve[-1][0] - window
    inside = [mean_return for timesteps, mean_return in curve if timesteps > 0 and timesteps >= start]
    return bool(inside) and all(mean_return >= threshold for mean_return in inside)
