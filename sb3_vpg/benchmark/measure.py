"""
What a benchmark process measures about itself, and the pool that gives each run a fresh process.

This module imports neither rl-zoo3 nor matplotlib, so that a process that measures throughput and memory with it
(:mod:`~sb3_vpg.benchmark.throughput`) does not carry them.
"""

import concurrent.futures
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


def fresh_process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """
    A pool that runs each task in a fresh process (``spawn``), so that each task's peak resident memory is its own.

    :param workers: Tasks at a time
    """
    context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1)


def peak_rss_mb() -> float:
    """
    The peak resident memory of this process so far, in MiB: Linux's ``VmHWM``, the high-water mark of this process's
    own memory. ``ru_maxrss`` would not do on Linux: a spawned process starts with its parent's peak, kept across exec.
    """
    status = Path("/proc/self/status")
    if status.exists():
        high_water_kib = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(high_water_kib) / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # bytes on macOS


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
            actions, _, _ = model.policy(obs_as_tensor(obs, model.device))
        obs, _, _, _ = env.step(model._env_actions(actions.cpu().numpy()))  # type: ignore[attr-defined]
        steps += env.num_envs
    seconds = time.perf_counter() - start
    return {"timesteps": steps, "fps": steps / seconds, "train_seconds": seconds, "eval_seconds": 0.0, "curve": []}
