"""
One run of the suite, in a process of its own: an algorithm with the file its hyperparameters come from, trained
(or, for the ceiling, only stepped) with rl-zoo3's experiment manager on one env with one seed, evaluated
periodically on a separate env; and where its result is stored.

Every algorithm reads its hyperparameters through rl-zoo3's own ``ExperimentManager``, from rl-zoo3's YAML format,
so that ``python -m sb3_vpg.zoo train --algo vpg`` (or ``python -m rl_zoo3.train --algo a2c``) and the suite train
with the same numbers: VPG from the package's ``hyperparams/`` folder, A2C and PPO from the ``a2c.yml`` and
``ppo.yml`` that rl-zoo3 installs.

Each run has a fresh process, so its peak resident memory (``VmHWM``) is its own. Its result is a JSON file in the
``runs/`` folder of the suite's output, its log beside it; :func:`pack_runs` keeps them all in one compressed archive,
``runs.tar.xz``, from which :func:`load_results` reads them when the folder is not there.
"""

import argparse
import contextlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import rl_zoo3
import torch as th
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from benchmarks.common import (
    EVAL_SEED_OFFSET,
    DeterministicEvaluation,
    machine_description,
    package_versions,
    peak_rss_mb,
    step_without_learning,
)
from sb3_vpg.zoo import ALGO as VPG_ALGO
from sb3_vpg.zoo import DEFAULT_CONFIG as VPG_BEST_CONFIG
from sb3_vpg.zoo import register

#: Plain Eq. (4): R(τ), no baseline, γ = 1; only the learning rate and the batch are set per env.
VPG_PLAIN_CONFIG = VPG_BEST_CONFIG.with_name("vpg_plain.yml")

#: The folder of the per-run results and logs in the suite's output folder, and the archive that keeps them
RUNS_FOLDER = "runs"
RUNS_ARCHIVE = "runs.tar.xz"

#: What the archive keeps of the folder: the results and the logs (not a ``.json.partial`` of an interrupted run)
ARCHIVED_SUFFIXES = (".json", ".log", ".npz", ".csv")
#: The folder of ``runs/`` that holds the runs' files in rl-zoo3's formats and layout (:func:`zoo_folder`)
ZOO_FOLDER = "zoo"


@dataclass(frozen=True)
class Algorithm:
    """
    One line of the results table.

    :param zoo_algo: rl-zoo3's name of the algorithm (``--algo``)
    :param config: The hyperparameter file; ``None`` for rl-zoo3's own ``hyperparams/<zoo_algo>.yml``
    :param learns: ``False`` for the rollout-collection ceiling: the envs and policy of ``config``, stepped without
        learning
    :param entry: The entry of rl-zoo3's file to use on every env (``"default"``: Stable-Baselines3's defaults),
        instead of the env's own
    """

    zoo_algo: str
    config: Path | None = None
    learns: bool = True
    entry: str | None = None


#: The algorithms, in table order. The ceiling steps vpg-best's envs with its policy, as SB3's rollout loop does.
ALGORITHMS: dict[str, Algorithm] = {
    "vpg-plain": Algorithm(VPG_ALGO, VPG_PLAIN_CONFIG),
    "vpg-best": Algorithm(VPG_ALGO, VPG_BEST_CONFIG),
    "a2c": Algorithm("a2c"),
    "ppo": Algorithm("ppo"),
    "rollout-ceiling": Algorithm(VPG_ALGO, VPG_BEST_CONFIG, learns=False),
    "a2c-default": Algorithm("a2c", entry="default"),
    "ppo-default": Algorithm("ppo", entry="default"),
}


@dataclass(frozen=True)
class RunSpec:
    """
    One run: an algorithm trained (or, for the ceiling, stepped) on an env with one seed.

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    :param seed: The seed of the envs and the model
    :param budget: Training timesteps (for the ceiling: timesteps stepped)
    :param eval_every: Timesteps between two evaluations
    :param n_eval_episodes: Episodes per evaluation
    :param device: The torch device
    :param hyperparams: The hyperparameters read from the algorithm's file, to tell whether a stored result is stale
    """

    algorithm: str
    env_id: str
    seed: int
    budget: int
    eval_every: int
    n_eval_episodes: int
    device: str
    hyperparams: dict[str, Any]

    @property
    def name(self) -> str:
        """The run, in words: ``vpg-best CartPole-v1 seed 0``."""
        return f"{self.algorithm} {self.env_id} seed {self.seed}"


#: rl-zoo3 tunes A2C and PPO on the MuJoCo envs' -v4 versions: on a -v5 env without an entry, the -v4 entry is used
PREVIOUS_VERSIONS = (("-v5", "-v4"),)


def zoo_config(algorithm: str, env_id: str, folder: str) -> str | None:
    """
    The hyperparameter file of ``algorithm`` for ``env_id``: the algorithm's own; for rl-zoo3's algorithms on an env
    that their file lacks but whose previous version it has (-v4 for -v5), or with a fixed ``entry``, a file in
    ``folder`` holding that entry under ``env_id``; ``None`` for rl-zoo3's own file as it is.

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    :param folder: Where to write a file made from a previous version's entry
    """
    spec = ALGORITHMS[algorithm]
    if spec.config is not None:
        return str(spec.config)
    entries = yaml.safe_load((Path(rl_zoo3.__file__).parent / "hyperparams" / f"{spec.zoo_algo}.yml").read_text())
    if spec.entry is not None:
        config = Path(folder) / f"{spec.zoo_algo}-{spec.entry}-{env_id}.yml"
        config.write_text(yaml.safe_dump({env_id: entries[spec.entry]}))
        return str(config)
    for suffix, previous_suffix in PREVIOUS_VERSIONS:
        previous = env_id.removesuffix(suffix) + previous_suffix
        if env_id not in entries and env_id.endswith(suffix) and previous in entries:
            config = Path(folder) / f"{spec.zoo_algo}-{env_id}.yml"
            config.write_text(yaml.safe_dump({env_id: entries[previous]}))
            return str(config)
    return None


def experiment_manager(
    algorithm: str,
    env_id: str,
    seed: int,
    budget: int,
    log_folder: str,
    device: str,
    manager_class: type[ExperimentManager] = ExperimentManager,
) -> ExperimentManager:
    """
    rl-zoo3's experiment manager for one run, with the algorithm's hyperparameter file and no callbacks of its own
    (no evaluation, no checkpoints: the suite evaluates).

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    :param seed: The seed of the envs and the model
    :param budget: Training timesteps (overrides the file's ``n_timesteps``)
    :param log_folder: Where rl-zoo3 writes the run's config and monitor files
    :param device: The torch device
    :param manager_class: rl-zoo3's ``ExperimentManager``, or sb3-vpg's for one rank of a torchrun job
    """
    register()
    spec = ALGORITHMS[algorithm]
    config = zoo_config(algorithm, env_id, log_folder)
    args = argparse.Namespace(algo=spec.zoo_algo, env=env_id, seed=seed, n_timesteps=budget, conf_file=config)
    return manager_class(
        args,
        spec.zoo_algo,
        env_id,
        log_folder,
        n_timesteps=budget,
        eval_freq=-1,
        seed=seed,
        verbose=0,
        device=device,
        config=config,
    )


def read_hyperparams(algorithm: str, env_id: str) -> dict[str, Any]:
    """
    The hyperparameters of ``algorithm`` for ``env_id``, as rl-zoo3 reads them (the env's entry, else ``default``).

    :param algorithm: A key of :data:`ALGORITHMS`
    :param env_id: The gymnasium id of the env
    """
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):  # rl-zoo3 prints them
        manager = experiment_manager(algorithm, env_id, seed=0, budget=0, log_folder=folder, device="cpu")
        return dict(manager.read_hyperparameters()[1])


def result_path(out_dir: Path, spec: RunSpec) -> Path:
    """
    Where the result of a run is stored (its log is next to it, ending in ``.log``).

    :param out_dir: The suite's output folder
    :param spec: The run
    """
    return out_dir / RUNS_FOLDER / spec.env_id / spec.algorithm / f"seed{spec.seed}.json"


def zoo_folder(out_dir: Path, spec: RunSpec) -> Path:
    """
    Where a run's files in rl-zoo3's own formats are stored, in rl-zoo3's layout (``<algo>/<env>_<id>``, the seed as
    the id) under ``runs/zoo/``: rl-zoo3's plotting scripts read them as they read its logs folder
    (``python -m rl_zoo3.cli all_plots -f <out>/runs/zoo -a <algorithm> -e <env>``).

    :param out_dir: The suite's output folder
    :param spec: The run
    """
    return out_dir / RUNS_FOLDER / ZOO_FOLDER / spec.algorithm / f"{spec.env_id}_{spec.seed}"


def write_zoo_files(
    folder: Path,
    monitors: Path,
    timesteps: list[int],
    episodes: list[tuple[list[float], list[int]]],
    **extra: np.ndarray,
) -> None:
    """
    Write a run's evaluations as rl-zoo3's ``EvalCallback`` does (``evaluations.npz``: ``timesteps``, ``results`` and
    ``ep_lengths``, one row per evaluation, one column per episode) and copy rl-zoo3's monitor files of its training
    episodes beside them.

    :param folder: Where to write them
    :param monitors: The folder of the run's ``*.monitor.csv`` files (the experiment manager's ``save_path``)
    :param timesteps: The timesteps of each evaluation
    :param episodes: Each evaluation's episodes: their returns and lengths
    :param extra: More arrays to store beside them (one value per evaluation)
    """
    folder.mkdir(parents=True, exist_ok=True)
    for monitor in sorted(monitors.glob("*.monitor.csv")):
        (folder / monitor.name).write_bytes(monitor.read_bytes())
    arrays = {
        "timesteps": np.array(timesteps),
        "results": np.array([returns for returns, _ in episodes]),
        "ep_lengths": np.array([lengths for _, lengths in episodes]),
        **extra,
    }
    np.savez(folder / "evaluations.npz", **arrays)  # type: ignore[arg-type]  # numpy's stubs type **kwds as allow_pickle


def load_result(path: Path) -> dict[str, Any] | None:
    """
    The result stored at ``path``.

    :param path: A result file
    :return: ``None`` if there is none
    """
    return json.loads(path.read_text()) if path.is_file() else None


def pack_runs(out_dir: Path) -> Path:
    """
    Write the results and logs of ``out_dir``'s ``runs/`` folder to ``runs.tar.xz`` beside it, replacing the archive.
    The archive depends only on the files' names and contents (sorted, no dates or owners), so that packing the same
    results again gives the same bytes.

    :param out_dir: The suite's output folder
    :return: The archive
    """
    archive = out_dir / RUNS_ARCHIVE
    files = sorted(path for path in (out_dir / RUNS_FOLDER).rglob("*") if path.is_file() and path.suffix in ARCHIVED_SUFFIXES)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:xz", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            member = tarfile.TarInfo(path.relative_to(out_dir).as_posix())
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))
    os.replace(partial, archive)
    return archive


def _archived_runs(out_dir: Path) -> Iterable[tuple[str, bytes]]:
    """The name (relative to ``out_dir``) and content of each file in ``out_dir``'s archive, in the archive's order."""
    with tarfile.open(out_dir / RUNS_ARCHIVE, "r:xz") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts or name.parts[0] != RUNS_FOLDER:
                expected = f"only files under {RUNS_FOLDER}/ belong there"
                raise ValueError(f"{out_dir / RUNS_ARCHIVE} holds {member.name!r}; {expected}")
            file = tar.extractfile(member)
            assert file is not None
            yield member.name, file.read()


def unpack_runs(out_dir: Path) -> int:
    """
    Recreate ``out_dir``'s ``runs/`` folder from its archive.

    :param out_dir: The suite's output folder, with a ``runs.tar.xz``
    :return: The number of files written
    """
    written = 0
    for name, data in _archived_runs(out_dir):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += 1
    return written


def restore_runs(out_dir: Path) -> int:
    """
    Make the archived results stored results: recreate ``out_dir``'s ``runs/`` folder from its archive when a clone
    has only the archive (the folder is git-ignored), so that runs are not done again and the archive written after
    new runs keeps the old ones.

    :param out_dir: The output folder
    :return: The number of files unpacked (0 when the folder is there, or no archive)
    """
    if (out_dir / RUNS_FOLDER).is_dir() or not (out_dir / RUNS_ARCHIVE).is_file():
        return 0
    return unpack_runs(out_dir)


def load_results(out_dir: Path, specs: Iterable[RunSpec]) -> list[dict[str, Any]]:
    """
    The stored results of ``specs``, in their order, leaving out the runs without one: from ``out_dir``'s ``runs/``
    folder if there is one, else from its ``runs.tar.xz``.

    :param out_dir: The suite's output folder
    :param specs: The runs
    """
    if (out_dir / RUNS_FOLDER).is_dir() or not (out_dir / RUNS_ARCHIVE).is_file():
        return [result for spec in specs if (result := load_result(result_path(out_dir, spec))) is not None]
    archived = {name: data for name, data in _archived_runs(out_dir) if name.endswith(".json")}
    names = (result_path(out_dir, spec).relative_to(out_dir).as_posix() for spec in specs)
    return [json.loads(archived[name]) for name in names if name in archived]


def train(
    model: BaseAlgorithm, eval_env: VecEnv, spec: RunSpec, callbacks: list[BaseCallback], zoo_files: Path, monitors: Path
) -> dict[str, Any]:
    """
    Train ``model`` for the run's budget, evaluating it before training, periodically, and at the end; write the
    evaluations and the training episodes in rl-zoo3's formats (:func:`write_zoo_files`).

    :param model: The model, built by rl-zoo3 with its training envs
    :param eval_env: The evaluation env
    :param spec: The run
    :param callbacks: The callbacks that the hyperparameter file asks for
    :param zoo_files: Where to write rl-zoo3's files
    :param monitors: Where rl-zoo3's monitor files of the training envs are
    :return: The timesteps trained, the training rate (evaluations left out), the times, the learning curve and the
        training episodes' return and length at each evaluation
    """
    evaluation = DeterministicEvaluation(eval_env, spec.eval_every, spec.n_eval_episodes)
    start = time.perf_counter()
    model.learn(spec.budget, callback=[*callbacks, evaluation])
    train_seconds = time.perf_counter() - start - evaluation.seconds
    write_zoo_files(zoo_files, monitors, [int(point[0]) for point in evaluation.curve], evaluation.episodes)
    return {
        "timesteps": model.num_timesteps,
        "fps": model.num_timesteps / train_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": evaluation.seconds,
        "curve": evaluation.curve,
        "training_curve": evaluation.training_curve,
    }


def execute(spec: RunSpec, out_dir: Path) -> dict[str, Any]:
    """
    Do one run and store its result (rl-zoo3's messages go to the log next to it).

    :param spec: The run
    :param out_dir: The suite's output folder
    :return: The result: the run, what :func:`train` or :func:`~benchmarks.common.step_without_learning` measured,
        memory in MiB (``start_rss_mb`` after the imports, ``peak_rss_mb`` at the end), and the machine and package
        versions it ran with (a suite can be split across machines)
    """
    th.set_num_threads(1)
    path = result_path(out_dir, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    start_rss_mb = peak_rss_mb()
    with (
        path.with_suffix(".log").open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        tempfile.TemporaryDirectory() as zoo_logs,
    ):
        manager = experiment_manager(spec.algorithm, spec.env_id, spec.seed, spec.budget, zoo_logs, spec.device)
        experiment = manager.setup_experiment()
        assert experiment is not None
        model = experiment[0]
        if ALGORITHMS[spec.algorithm].learns:
            eval_env = manager.create_envs(1, eval_env=True)
            eval_env.seed(spec.seed + EVAL_SEED_OFFSET)
            measured = train(model, eval_env, spec, manager.callbacks, zoo_folder(out_dir, spec), Path(manager.save_path))
        else:
            measured = step_without_learning(model, spec.budget)
    result = {
        "spec": asdict(spec),
        **measured,
        "start_rss_mb": start_rss_mb,
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine_description(),
        "versions": package_versions(),
    }
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(result, indent=1))
    os.replace(partial, path)  # a result file is always whole: an interrupted run leaves none
    return result
