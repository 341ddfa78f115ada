"""
One run of the benchmark, in a process of its own: train (or, for the ceiling, only step) with rl-zoo3's
experiment manager, evaluate periodically on a separate env, and write what was measured to a JSON file.

Each run has a fresh process, so its peak resident memory (``VmHWM``) is its own.
"""

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_vpg.benchmark.measure import peak_rss_mb, step_without_learning
from sb3_vpg.benchmark.suite import ALGORITHMS, RunSpec, experiment_manager

#: Added to the run's seed to seed the evaluation env, so that it does not replay the training env's episodes.
EVAL_SEED_OFFSET = 10_000


def result_path(out_dir: Path, spec: RunSpec) -> Path:
    """Where the result of ``spec`` is stored (its log is next to it, ending in ``.log``)."""
    return out_dir / "runs" / spec.env_id / spec.algorithm / f"seed{spec.seed}.json"


def load_result(path: Path) -> dict[str, Any] | None:
    """The result stored at ``path``, or ``None`` if there is none."""
    return json.loads(path.read_text()) if path.is_file() else None


class PeriodicEvaluation(BaseCallback):
    """
    Evaluate the deterministic policy on a separate env before training, every ``eval_every`` timesteps, and at the
    end, timing the evaluations so that they can be left out of the training time.

    :param eval_env: The evaluation env (its ``VecNormalize`` statistics, if any, are copied from the training env)
    :param eval_every: Timesteps between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    """

    def __init__(self, eval_env: VecEnv, eval_every: int, n_eval_episodes: int):
        super().__init__()
        self.eval_env = eval_env
        self.eval_every = eval_every
        self.n_eval_episodes = n_eval_episodes
        #: ``[timesteps, mean return, std of the return]`` of each evaluation
        self.curve: list[list[float]] = []
        #: Time spent evaluating
        self.seconds = 0.0

    def _on_training_start(self) -> None:
        self._evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.curve[-1][0] + self.eval_every:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps > self.curve[-1][0]:
            self._evaluate()

    def _evaluate(self) -> None:
        start = time.perf_counter()
        sync_envs_normalization(self.training_env, self.eval_env)
        mean, std = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes, deterministic=True)
        self.curve.append([self.num_timesteps, float(mean), float(std)])
        self.seconds += time.perf_counter() - start


def train(model: BaseAlgorithm, eval_env: VecEnv, spec: RunSpec, callbacks: list[BaseCallback]) -> dict[str, Any]:
    """
    Train ``model`` for the run's budget, evaluating it periodically.

    :param model: The model, built by rl-zoo3 with its training envs
    :param eval_env: The evaluation env
    :param spec: The run
    :param callbacks: The callbacks that the hyperparameter file asks for
    :return: The timesteps trained, the training rate (evaluations left out), the times and the learning curve
    """
    evaluation = PeriodicEvaluation(eval_env, spec.eval_every, spec.n_eval_episodes)
    start = time.perf_counter()
    model.learn(spec.budget, callback=[*callbacks, evaluation])
    train_seconds = time.perf_counter() - start - evaluation.seconds
    return {
        "timesteps": model.num_timesteps,
        "fps": model.num_timesteps / train_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": evaluation.seconds,
        "curve": evaluation.curve,
    }


def execute(spec: RunSpec, out_dir: Path) -> dict[str, Any]:
    """
    Do one run and store its result (rl-zoo3's messages go to the log next to it).

    :param spec: The run
    :param out_dir: The benchmark's output folder
    :return: The result: the run, what :func:`train` or :func:`step_without_learning` measured, and memory in MiB
        (``start_rss_mb`` after the imports, ``peak_rss_mb`` at the end)
    """
    th.set_num_threads(1)
    path = result_path(out_dir, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    start_rss_mb = peak_rss_mb()
    with (
        path.with_suffix(".log").open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        tempfile.TemporaryDirectory() as zoo_folder,
    ):
        manager = experiment_manager(spec.algorithm, spec.env_id, spec.seed, spec.budget, zoo_folder, spec.device)
        experiment = manager.setup_experiment()
        assert experiment is not None
        model = experiment[0]
        if ALGORITHMS[spec.algorithm].learns:
            eval_env = manager.create_envs(1, eval_env=True)
            eval_env.seed(spec.seed + EVAL_SEED_OFFSET)
            measured = train(model, eval_env, spec, manager.callbacks)
        else:
            measured = step_without_learning(model, spec.budget)
    result = {"spec": asdict(spec), **measured, "start_rss_mb": start_rss_mb, "peak_rss_mb": peak_rss_mb()}
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(result, indent=1))
    os.replace(partial, path)  # a result file is always whole: an interrupted run leaves none
    return result
