"""
One run of the scale-out benchmark (:mod:`benchmarks.scale_out`), started by torchrun on N ranks:
``python -m torch.distributed.run --nproc-per-node N -m benchmarks.scale_out_run SPEC.json RESULT.json``.

VPG with the env's ``vpg.yml`` entry, through rl-zoo3's experiment manager (sb3-vpg's on several ranks, which splits
the entry's ``n_envs``), evaluated by rank 0 at update boundaries while every rank waits: the evaluations are left out
of the training time of all ranks alike. Rank 0 writes the result: the learning curve against timesteps and against
training seconds, the training rate, and the CPU seconds of all ranks.
"""

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch as th
import torch.distributed as dist
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization
from torch.distributed.elastic.multiprocessing.errors import record

from benchmarks.common import EVAL_SEED_OFFSET, deterministic_return, machine_description, package_versions
from benchmarks.runs import experiment_manager
from sb3_vpg import distributed
from sb3_vpg.zoo.distributed import DistributedExperimentManager


class PhaseTimer(BaseCallback):
    """The wall time this rank spends collecting (from each rollout's start to its end, its callbacks included)."""

    def __init__(self) -> None:
        super().__init__()
        self.collect_seconds = 0.0
        self._started = 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.collect_seconds += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        return True


class SynchronizedEvaluation(BaseCallback):
    """
    Rank 0 evaluates the deterministic policy before training, at the first update boundary after every
    ``eval_every`` timesteps, and at the end; the other ranks wait for it at a barrier, so that no rank trains while
    it evaluates. The time from the start of an evaluation to the end of the barrier is left out of training time.

    :param eval_env: The evaluation env (rank 0), ``None`` on the other ranks
    :param eval_every: Timesteps between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    """

    def __init__(self, eval_env: VecEnv | None, eval_every: int, n_eval_episodes: int) -> None:
        super().__init__()
        self.eval_env = eval_env
        self.eval_every = eval_every
        self.n_eval_episodes = n_eval_episodes
        #: ``[timesteps, mean return, std, training seconds]`` of each evaluation
        self.curve: list[list[float]] = []
        self.seconds = 0.0
        self.start = 0.0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self._evaluate()

    def _on_rollout_start(self) -> None:
        # At an update boundary every rank's model holds the same timesteps (the callback's own copy is that of its
        # last step, this rank's count before the rollout's end summed them), so every rank decides alike.
        if self.model.num_timesteps >= self.curve[-1][0] + self.eval_every:
            self._evaluate()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.model.num_timesteps > self.curve[-1][0]:
            self._evaluate()

    def _evaluate(self) -> None:
        started = time.perf_counter()
        trained = started - self.start - self.seconds
        mean = std = float("nan")
        if self.eval_env is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
            mean, std = deterministic_return(self.model, self.eval_env, self.n_eval_episodes)
        if dist.is_initialized():
            dist.barrier()
        self.seconds += time.perf_counter() - started
        self.curve.append([self.model.num_timesteps, mean, std, trained])


def run(spec: dict[str, Any]) -> dict[str, Any] | None:
    """
    Train one run on this rank; rank 0 returns the result, the others ``None``.

    :param spec: ``env_id``, ``seed``, ``budget``, ``eval_every``, ``n_eval_episodes``
    """
    th.set_num_threads(1)
    manager_class = DistributedExperimentManager if distributed.world_size() > 1 else ExperimentManager
    with tempfile.TemporaryDirectory() as zoo_folder:
        manager = experiment_manager(
            "vpg-best", spec["env_id"], spec["seed"], spec["budget"], zoo_folder, "cpu", manager_class
        )
        experiment = manager.setup_experiment()
        assert experiment is not None
        model = experiment[0]
        eval_env = None
        if distributed.is_main_process():
            eval_env = manager.create_envs(1, eval_env=True)
            eval_env.seed(spec["seed"] + EVAL_SEED_OFFSET)
        evaluation = SynchronizedEvaluation(eval_env, spec["eval_every"], spec["n_eval_episodes"])
        # The timer after the evaluation: a rollout's collection starts once the evaluation at its start is over.
        phases = PhaseTimer()
        cpu_start = time.process_time()
        model.learn(spec["budget"], callback=[*manager.callbacks, evaluation, phases])
        wall = time.perf_counter() - evaluation.start
        cpu_seconds = th.tensor([time.process_time() - cpu_start], dtype=th.float64)
        if dist.is_initialized():
            dist.all_reduce(cpu_seconds)
    if not distributed.is_main_process():
        return None
    train_seconds = wall - evaluation.seconds
    return {
        "spec": spec,
        "ranks": distributed.world_size(),
        "n_envs": model.n_envs,
        "timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "train_seconds": train_seconds,
        "eval_seconds": evaluation.seconds,
        "fps": model.num_timesteps / train_seconds,
        # Rank 0's collection (its rollouts end when its own episodes do; the wait for the other ranks and the update
        # are the rest of the training time)
        "collect_seconds": phases.collect_seconds,
        "cpu_seconds": float(cpu_seconds.item()),
        "curve": evaluation.curve,
        "machine": machine_description(),
        "versions": package_versions(),
    }


@record
def main() -> None:
    spec_path, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    log = result_path.with_name(f"{result_path.stem}-rank{distributed.rank()}.log")
    with log.open("w") as output, contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        result = run(json.loads(spec_path.read_text()))
    if result is not None:
        partial = result_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(result, indent=1))
        os.replace(partial, result_path)  # a result file is always whole


if __name__ == "__main__":
    main()
