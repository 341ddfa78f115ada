"""
The worker of the distributed tests, started by torchrun (``tests/test_distributed.py``): ``torchrun ...
tests/distributed_worker.py COMMAND OUTPUT_FOLDER``. Each rank writes what it computed to ``OUTPUT_FOLDER``, one
file per rank (and case); the test process compares them with one process's results.

- ``given-episodes``: for every case of :data:`tests.given_episodes.CASES`, one update on this rank's part of the
  given episodes.
- ``train``: ``learn()`` on CartPole with VecNormalize: the parameters, counts and statistics each rank holds after
  (``train-cuda``: on the GPUs, NCCL).
- ``die``, ``stall``: rank 1 is killed, or stopped, mid-training.
- ``resume``: ``examples/distributed_training.py``, rank 1 killed in the first attempt; what each attempt trained.
- ``hang``: each rank sleeps for an hour: a job that only its bound ends.
"""

import importlib.util
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize
from torch.distributed.elastic.multiprocessing.errors import record

from sb3_vpg import VPG, distributed
from tests.given_episodes import CASES, fill, make_model, rank_episodes, update
from tests.helpers_sb3 import CountingEnv


def given_episodes(output: Path) -> None:
    results = {}
    for case in CASES:
        model = make_model(case)
        model._synchronize_ranks()  # rank 0's parameters, as learn() would start with
        fill(model, rank_episodes(case, distributed.rank(), distributed.world_size()))
        results[case.name] = update(model)
    th.save(results, output / f"given-episodes-{distributed.rank()}.pt")


def _record_updates(statistics: RunningMeanStd, batches: list[np.ndarray]) -> None:
    """Keep a copy of every batch the running statistics are updated with."""
    update_statistics = statistics.update

    def recording(batch: np.ndarray) -> None:
        batches.append(np.array(batch, copy=True))
        update_statistics(batch)

    statistics.update = recording  # type: ignore[method-assign]


class CountSteps(BaseCallback):
    """Counts this rank's env steps (every env's)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def _on_step(self) -> bool:
        self.steps += self.training_env.num_envs
        return True


def train(output: Path, device: str = "cpu") -> None:
    """A few updates of VPG on CartPole with VecNormalize (fresh on every rank); what each rank holds after them."""
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=2))
    samples: dict[str, list[np.ndarray]] = {"obs": [], "ret": []}
    _record_updates(env.obs_rms, samples["obs"])
    _record_updates(env.ret_rms, samples["ret"])
    model = VPG("MlpPolicy", env, n_steps=64, reward_to_go=True, baseline="value", n_value_steps=2, seed=0, device=device)
    steps = CountSteps()
    model.learn(600, callback=steps)
    stats = {
        key: dict(count=rms.count, mean=rms.mean, var=rms.var) for key, rms in (("obs", env.obs_rms), ("ret", env.ret_rms))
    }
    parameters = {name: value.detach().cpu().clone() for name, value in model.policy.state_dict().items()}
    result = dict(
        device=str(model.device),
        backend=th.distributed.get_backend(),
        parameters=parameters,
        n_updates=model._n_updates,
        num_timesteps=model.num_timesteps,
        steps=steps.steps,
        stats=stats,
        samples=samples,
    )
    th.save(result, output / f"train-{distributed.rank()}.pt")


class FaultAtUpdate(BaseCallback):
    """
    On one rank, at the start of the rollout after its ``at``-th update, sends this process ``signal``; with a
    ``marker`` file, only if the file does not exist yet (it is written first): once per job, whatever its restarts.
    """

    def __init__(self, rank: int, at: int, signal: int, marker: Path | None = None) -> None:
        super().__init__()
        self.rank, self.at, self.signal, self.marker = rank, at, signal, marker

    def _on_rollout_start(self) -> None:
        if distributed.rank() == self.rank and self.model._n_updates == self.at:
            if self.marker is not None:
                if self.marker.exists():
                    return
                self.marker.touch()
            os.kill(os.getpid(), self.signal)

    def _on_step(self) -> bool:
        return True


def counting_model(**kwargs: Any) -> VPG:
    return VPG("MlpPolicy", make_vec_env(lambda: CountingEnv(ep_length=5), n_envs=2), n_steps=10, seed=0, **kwargs)


def die(output: Path) -> None:
    """Rank 1 is killed (SIGKILL) after its 3rd update, while rank 0 goes on."""
    counting_model().learn(10_000, callback=FaultAtUpdate(1, 3, signal.SIGKILL))


def stall(output: Path) -> None:
    """Rank 1 stops (SIGSTOP, as a hung env would) after its 3rd update; rank 0 waits at most 3 s for it."""
    counting_model(collective_timeout=3.0).learn(10_000, callback=FaultAtUpdate(1, 3, signal.SIGSTOP))


def hang(output: Path) -> None:
    """Each rank sleeps for an hour."""
    time.sleep(3600)


class RecordBatches(BaseCallback):
    """
    Appends to a file the update count each run of the job starts from, and each batch this rank is about to train (at
    the end of its rollout): the update it will be, and each episode's steps by (env, episode), from the observations
    (env, episode, t) of CountingEnvs. (torchrun's restart count is each agent's own: the runs are counted here.)
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")

    def _on_training_start(self) -> None:
        self._write(dict(start=self.model._n_updates))

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        episodes: dict[str, list[int]] = {}
        for index, episode, t in buffer.observations.astype(int).tolist():
            episodes.setdefault(f"{index}/{episode}", []).append(t)
        self._write(dict(update=self.model._n_updates + 1, episodes=episodes))

    def _on_step(self) -> bool:
        return True


def resume(output: Path) -> None:
    """
    The distributed example, checkpointing every 80 timesteps (2 updates of 8 five-step episodes), on CountingEnvs that
    number their episodes; in the job's first run the last rank is killed after its 6th update, one update after rank
    0's last checkpoint (taken at 240 timesteps, before the 6th update). What each rank trained is recorded.
    """
    example = _load_example()
    envs = itertools.count()
    rank = distributed.rank()
    callbacks: list[BaseCallback] = [RecordBatches(output / f"batches-{rank}.jsonl")]
    callbacks.append(FaultAtUpdate(distributed.world_size() - 1, 6, signal.SIGKILL, output / "killed"))
    model = example.train(
        lambda: CountingEnv(ep_length=5, index=100 * rank + next(envs)),
        400,
        output / "checkpoints",
        80,
        callbacks=callbacks,
        norm_obs=False,  # the observations name the steps
    )
    final = dict(n_updates=model._n_updates, num_timesteps=model.num_timesteps)
    with (output / f"final-{rank}.json").open("w") as file:
        json.dump(final, file)


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("distributed_training", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = Path(__file__).parents[1] / "examples" / "distributed_training.py"
COMMANDS = {
    "given-episodes": given_episodes,
    "train": train,
    "train-cuda": lambda output: train(output, device="cuda"),
    "die": die,
    "stall": stall,
    "resume": resume,
    "hang": hang,
}


@record
def main() -> None:
    th.set_num_threads(1)
    output = Path(sys.argv[2])
    output.mkdir(parents=True, exist_ok=True)
    COMMANDS[sys.argv[1]](output)


if __name__ == "__main__":
    main()
